// Rampart's portal: fills the server-rendered pages from the JSON API (/api/v1/...).
// Everything it shows went through the API's guard and object checks; it writes text with
// textContent (never innerHTML), and sends the CSRF token with every change.
'use strict';

(() => {
  const $ = (selector, root = document) => root.querySelector(selector);
  let me = null;

  function status(text, isError) {
    const line = $('#status');
    if (line) {
      line.textContent = text || '';
      line.className = isError ? 'error' : '';
    }
  }

  function loginPage() {
    const here = location.pathname + location.search;
    location.href = '/login?next=' + encodeURIComponent(here);
  }

  // One request to the API: the parsed body and the response's headers.
  async function request(method, path, body) {
    const headers = {};
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (method !== 'GET' && me && me.csrf_token) headers['X-CSRF-Token'] = me.csrf_token;
    const response = await fetch(path, {
      method,
      headers,
      credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401 && !path.startsWith('/api/v1/login') && path !== '/api/v1/oidc/second-factor') {
      loginPage();
      throw new Error('log in first');
    }
    const text = await response.text();
    let data = text;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (_) {
      // not JSON: keep the text
    }
    if (!response.ok) {
      throw new Error(data && data.error ? data.error.message : `HTTP ${response.status}`);
    }
    return { data, headers: response.headers };
  }

  async function api(method, path, body) {
    return (await request(method, path, body)).data;
  }

  const withParams = (path, params) => {
    const extra = new URLSearchParams(params).toString();
    if (!extra) return path;
    return path + (path.includes('?') ? '&' : '?') + extra;
  };

  // One page of a list: its items and the cursor of the next page (null on the last).
  async function apiPage(path) {
    const { data, headers } = await request('GET', path);
    return { items: Array.isArray(data) ? data : [], next: headers.get('x-next-cursor') };
  }

  // A whole list, page by page (for counts; bounded to 50 pages of the largest size).
  async function apiAll(path) {
    const all = [];
    let cursor = null;
    for (let pageNumber = 0; pageNumber < 50; pageNumber += 1) {
      const params = { limit: 10000 };
      if (cursor) params.cursor = cursor;
      const { items, next } = await apiPage(withParams(path, params));
      all.push(...items);
      if (!next) break;
      cursor = next;
    }
    return all;
  }

  // Runs an action, reporting its failure on the status line, once: "what: why", unless the
  // server's message already says what failed.
  async function attempt(what, action) {
    try {
      status('');
      await action();
    } catch (err) {
      const message = String(err.message || err);
      status(message.toLowerCase().startsWith(what.toLowerCase()) ? message : `${what}: ${message}`, true);
    }
  }

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === 'onclick') node.addEventListener('click', value);
      else if (key === 'class') node.className = value;
      else node.setAttribute(key, value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  // Fills a table's body; each cell carries its column's name (the narrow layout shows it).
  function fill(selector, rows, render, empty) {
    const table = $(selector);
    const body = $('tbody', table);
    const names = [...$('thead tr', table).children].map((th) => th.textContent.trim());
    body.replaceChildren();
    if (!rows || rows.length === 0) {
      const row = el('tr', { 'data-empty': 'true' }, el('td', { colspan: names.length, class: 'empty' }, empty || 'nothing'));
      body.append(row);
      return;
    }
    for (const row of rows) {
      body.append(el('tr', {}, render(row).map((cell, i) => el('td', { 'data-label': names[i] || '' }, cell))));
    }
  }

  // How many items a list page asks for: `?page_size=N` in the page's address, else 50.
  const PAGE_SIZE = Math.min(Math.max(Number(new URLSearchParams(location.search).get('page_size')) || 50, 1), 1000);

  // A table that pages with the API's cursor, sorts by a click on a column's heading and
  // searches the rows it has loaded (the search filters the page shown, not the whole list).
  // `newestFirst`: the API's page is in ascending order (the audit log); show it reversed.
  function listView(selector, render, empty, { newestFirst = false } = {}) {
    const table = $(selector);
    const wrap = el('div', { class: 'table-wrap' });
    table.replaceWith(wrap);
    wrap.append(table);
    const name = selector.slice(1);
    const search = el('input', { type: 'search', class: 'search', placeholder: 'Search this page', 'aria-label': `search ${name}` });
    const info = el('span', { class: 'page-info' });
    const previous = button('‹ Previous page', () => go(-1), 'secondary');
    const following = button('Next page ›', () => go(1), 'secondary');
    wrap.before(el('div', { class: 'list-tools' }, search, info));
    wrap.after(el('div', { class: 'pager', 'data-for': name }, previous, following));
    let base = null;
    let cursors = [null];
    let index = 0;
    let nextCursor = null;
    let loaded = 0;

    const applySearch = () => {
      const needle = search.value.trim().toLowerCase();
      let shown = 0;
      for (const row of table.tBodies[0].rows) {
        if (row.dataset.empty) continue;
        const hit = !needle || row.textContent.toLowerCase().includes(needle);
        row.hidden = !hit;
        if (hit) shown += 1;
      }
      info.textContent = needle
        ? `${shown} of ${loaded} on page ${index + 1} match`
        : `page ${index + 1}: ${loaded} ${loaded === 1 ? 'item' : 'items'}${nextCursor ? ', more on the next page' : ''}`;
    };
    search.addEventListener('input', applySearch);

    // Sorting: by the text of the column, numbers as numbers; a second click reverses.
    [...$('thead tr', table).children].forEach((th, column) => {
      if (!th.textContent.trim()) return;
      th.tabIndex = 0;
      th.classList.add('sortable');
      const sort = () => {
        const ascending = th.getAttribute('aria-sort') !== 'ascending';
        for (const other of $('thead tr', table).children) other.removeAttribute('aria-sort');
        th.setAttribute('aria-sort', ascending ? 'ascending' : 'descending');
        const rows = [...table.tBodies[0].rows].filter((row) => !row.dataset.empty);
        const text = (row) => (row.cells[column] ? row.cells[column].textContent.trim() : '');
        rows.sort((a, b) => text(a).localeCompare(text(b), undefined, { numeric: true }) * (ascending ? 1 : -1));
        table.tBodies[0].append(...rows);
      };
      th.addEventListener('click', sort);
      th.addEventListener('keydown', (event) => {
        if (event.key === 'Enter' || event.key === ' ') {
          event.preventDefault();
          sort();
        }
      });
    });

    async function show() {
      const params = { limit: PAGE_SIZE };
      if (cursors[index]) params.cursor = cursors[index];
      const { items, next } = await apiPage(withParams(base, params));
      nextCursor = next;
      loaded = items.length;
      for (const th of $('thead tr', table).children) th.removeAttribute('aria-sort');
      fill(selector, newestFirst ? [...items].reverse() : items, render, empty);
      previous.disabled = index === 0;
      following.disabled = !nextCursor;
      applySearch();
    }

    function go(step) {
      attempt('page', async () => {
        if (step > 0 && nextCursor) {
          cursors = cursors.slice(0, index + 1);
          cursors.push(nextCursor);
          index += 1;
        } else if (step < 0 && index > 0) {
          index -= 1;
        }
        await show();
      });
    }

    return {
      // Shows the first page of `path` (a list URL with its filters).
      load: async (path) => {
        base = path;
        cursors = [null];
        index = 0;
        await show();
      },
      // Shows the current page again (after a change).
      reload: () => show(),
    };
  }

  // Asks before a destructive action, saying what goes with it. Resolves true on confirm.
  function confirmAction(question, consequence, verb) {
    return new Promise((resolve) => {
      let answered = false;
      const dialog = el(
        'dialog',
        { class: 'confirm', 'aria-label': question },
        el('p', { class: 'question' }, el('strong', {}, question)),
        el('p', { class: 'consequence' }, consequence),
      );
      const done = (ok) => {
        if (answered) return;
        answered = true;
        dialog.close();
        dialog.remove();
        resolve(ok);
      };
      const cancel = button('Cancel', () => done(false), 'secondary');
      const ok = button(verb, () => done(true), 'danger');
      dialog.append(el('div', { class: 'actions' }, cancel, ok));
      dialog.addEventListener('cancel', (event) => {
        event.preventDefault();
        done(false);
      });
      document.body.append(dialog);
      dialog.showModal();
      cancel.focus();
    });
  }

  const plural = (count, one, many) => `${count} ${count === 1 ? one : many || `${one}s`}`;

  // A list of things in words: "a", "a and b", "a, b and c".
  const words = (items) => {
    const parts = items.filter(Boolean);
    if (parts.length <= 1) return parts.join('');
    return `${parts.slice(0, -1).join(', ')} and ${parts[parts.length - 1]}`;
  };

  // A label as the API sends it ({key, value}) or as text.
  const labelText = (label) =>
    label && typeof label === 'object' ? `${label.key}=${label.value}` : String(label ?? '');
  const labelsText = (labels) => (labels || []).map(labelText).join(', ');

  function formValues(form) {
    const values = {};
    for (const [key, value] of new FormData(form).entries()) {
      if (typeof value === 'string' && value.trim() !== '') values[key] = value.trim();
    }
    return values;
  }

  function query(values) {
    const params = new URLSearchParams(values).toString();
    return params ? `?${params}` : '';
  }

  function onSubmit(selector, handler) {
    const form = $(selector);
    if (!form) return;
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      handler(form, event.submitter);
    });
  }

  function button(label, action, cls) {
    return el('button', { type: 'button', class: cls || '', onclick: action }, label);
  }

  const isAuditor = () => me && (me.user.role === 'auditor' || me.user.role === 'admin');
  const isAdmin = () => me && me.user.role === 'admin';
  const time = (text) => (text ? text.replace('T', ' ').replace(/\.\d+/, '') : '');
  const csv = (text) => (text ? text.split(',').map((s) => s.trim()).filter(Boolean) : undefined);

  async function whoAmI() {
    me = await api('GET', '/api/v1/me');
    const who = $('#whoami');
    if (who) who.textContent = `${me.user.name} (${me.user.role})`;
    for (const link of document.querySelectorAll('nav a[data-role="auditor"]')) {
      link.hidden = !isAuditor();
    }
    for (const node of document.querySelectorAll('.admin-only')) node.hidden = !isAdmin();
    const logout = $('#logout');
    if (logout) {
      logout.addEventListener('click', () =>
        attempt('log out', async () => {
          await api('POST', '/api/v1/logout');
          location.href = '/login';
        }),
      );
    }
  }

  function websocketUrl(path) {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${scheme}//${location.host}${path}`;
  }

  // Where to go after logging in: `next` only if it is a place on this site, else home. The
  // browser's own URL parser decides (it reads `/\host`, tabs and newlines the way navigation
  // would); only a result on this very origin is used, and as an absolute URL, so that a path
  // that normalises to `//host` cannot be read again as another site: never an open redirect.
  function sameSitePath(next) {
    if (!next) return '/';
    let url;
    try {
      url = new URL(next, location.origin);
    } catch (_) {
      return '/';
    }
    return url.origin === location.origin ? url.href : '/';
  }

  const pages = {};

  // Passkeys (WebAuthn): the API's options (base64url text) to what the browser takes, and
  // the browser's credential back to JSON. Empty values are dropped: the browser refuses a
  // null where it expects a word.
  const fromB64u = (text) => {
    const s = String(text).replace(/-/g, '+').replace(/_/g, '/');
    const binary = atob(s + '==='.slice((s.length + 3) % 4));
    return Uint8Array.from(binary, (c) => c.charCodeAt(0)).buffer;
  };
  const toB64u = (buffer) =>
    btoa(String.fromCharCode(...new Uint8Array(buffer))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  const withoutNulls = (value) => {
    if (Array.isArray(value)) return value.map(withoutNulls);
    if (value && typeof value === 'object') {
      return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== null).map(([k, v]) => [k, withoutNulls(v)]));
    }
    return value;
  };
  const passkeyCreation = (options) => {
    const o = withoutNulls(options.publicKey);
    o.challenge = fromB64u(o.challenge);
    o.user.id = fromB64u(o.user.id);
    for (const c of o.excludeCredentials || []) c.id = fromB64u(c.id);
    return o;
  };
  const passkeyRequest = (options) => {
    const o = withoutNulls(options.publicKey);
    o.challenge = fromB64u(o.challenge);
    for (const c of o.allowCredentials || []) c.id = fromB64u(c.id);
    return o;
  };
  const registrationJSON = (c) => ({
    id: c.id,
    rawId: toB64u(c.rawId),
    type: c.type,
    response: { attestationObject: toB64u(c.response.attestationObject), clientDataJSON: toB64u(c.response.clientDataJSON) },
    extensions: {},
  });
  const assertionJSON = (c) => ({
    id: c.id,
    rawId: toB64u(c.rawId),
    type: c.type,
    response: {
      authenticatorData: toB64u(c.response.authenticatorData),
      clientDataJSON: toB64u(c.response.clientDataJSON),
      signature: toB64u(c.response.signature),
      userHandle: c.response.userHandle ? toB64u(c.response.userHandle) : null,
    },
    extensions: {},
  });
  // A waiting login (`login_id`, `options`) answered by a passkey of this browser.
  async function answerWithPasskey(waiting) {
    const credential = await navigator.credentials.get({ publicKey: passkeyRequest(waiting.options) });
    if (!credential) throw new Error('no passkey was given');
    await api('POST', '/api/v1/login/passkey', { login_id: waiting.login_id, credential: assertionJSON(credential) });
  }

  pages.login = async () => {
    const next = () => sameSitePath(new URLSearchParams(location.search).get('next'));
    onSubmit('#login-form', (form) =>
      attempt('login failed', async () => {
        const values = formValues(form);
        const answer = await api('POST', '/api/v1/login', {
          username: values.username || '',
          password: new FormData(form).get('password') || '',
          totp: values.totp,
        });
        if (answer && answer.second_factor === 'passkey') {
          // The password was right; the account has a passkey: it completes the login.
          status('Confirm with your passkey.');
          await answerWithPasskey(answer);
        }
        location.href = next();
      }),
    );
    const passkeyButton = $('#passkey-login-button');
    if (passkeyButton) {
      passkeyButton.addEventListener('click', () =>
        attempt('login failed', async () => {
          const waiting = await api('POST', '/api/v1/login/passkey/start');
          await answerWithPasskey(waiting);
          location.href = next();
        }),
      );
    }
    // Single sign-on: the button returns to ?next= too; after the provider, an error or the
    // TOTP code the account still needs.
    const params = new URLSearchParams(location.search);
    const sso = $('#oidc-login-link');
    if (sso && params.get('next')) {
      sso.href = '/api/v1/oidc/start?next=' + encodeURIComponent(sameSitePath(params.get('next')));
    }
    if (params.get('oidc_error')) status('Single sign-on refused: sign in again, or ask your administrator.', true);
    const codeForm = $('#oidc-code-form');
    if (codeForm && params.get('oidc') === 'code') {
      $('#login-form').hidden = true;
      $('#oidc-login').hidden = true;
      codeForm.hidden = false;
      onSubmit('#oidc-code-form', (form) =>
        attempt('login failed', async () => {
          await api('POST', '/api/v1/oidc/second-factor', { code: formValues(form).code || '' });
          location.href = sameSitePath(params.get('next'));
        }),
      );
    }
  };

  // Who did something, in words.
  function actorName(actor) {
    if (typeof actor === 'string') return actor;
    if (!actor || typeof actor !== 'object') return 'someone';
    if (actor.type === 'user') return actor.name;
    if (actor.type === 'local_cli') return `${actor.os_user} (command line)`;
    if (actor.type === 'system') return 'Rampart';
    return 'someone';
  }

  // "user:alice" -> "alice", "group:ops" -> "group ops"; "asset:web-01" -> "web-01",
  // "labels:env=prod" -> "assets labelled env=prod".
  const subjectText = (text) => String(text || '').replace(/^user:/, '').replace(/^group:/, 'group ');
  const targetText = (text) => String(text || '').replace(/^asset:/, '').replace(/^labels?:/, 'assets labelled ');
  const sessionWhat = (kind) => {
    const k = String(kind || '');
    if (k === 'shell') return 'opened a shell on';
    if (k === 'exec') return 'ran a command on';
    if (k === 'sftp') return 'opened an SFTP session on';
    if (k === 'scp') return 'copied files with scp on';
    if (k.startsWith('port_forward')) return `forwarded a connection to port ${k.split(':')[1] || '?'} of`;
    return `started a ${k} session on`;
  };
  const bytes = (n) => (n >= 1048576 ? `${(n / 1048576).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} bytes`);

  // One readable sentence per event kind; the details hold every field.
  const SENTENCES = {
    node_initialized: (e) => `Rampart initialized its data directory ${e.data_dir}`,
    user_added: (e, who) => `${who} added user ${e.user} (${e.role})`,
    user_removed: (e, who) => `${who} removed user ${e.user}${e.grants_removed ? ` and ${plural(e.grants_removed, 'grant')}` : ''}`,
    user_disabled: (e, who) => `${who} disabled user ${e.user}`,
    user_enabled: (e, who) => `${who} enabled user ${e.user}`,
    user_key_added: (e, who) => `${who} added an SSH key for ${e.user}`,
    user_key_removed: (e, who) => `${who} removed an SSH key of ${e.user}`,
    user_password_changed: (e, who) => `${who} changed the password of ${e.user}`,
    mfa_enrolled: (e, who) => `${who} enrolled ${e.user} in two-factor authentication`,
    mfa_reset: (e, who) => `${who} reset the second factors of ${e.user}${e.passkeys ? ` (${e.passkeys === 1 ? 'and 1 passkey' : `and ${e.passkeys} passkeys`})` : ''}`,
    passkey_added: (e, who) => `${who} registered the passkey "${e.name}" for ${e.user}`,
    passkey_removed: (e, who) => `${who} removed the passkey "${e.name}" of ${e.user}`,
    user_login_rules_changed: (e, who) => `${who} changed the login rules of ${e.user}`,
    user_unlocked: (e, who) => `${who} unlocked ${e.user}`,
    group_added: (e, who) => `${who} added group ${e.group}`,
    group_member_added: (e, who) => `${who} added ${e.user} to group ${e.group}`,
    group_member_removed: (e, who) => `${who} took ${e.user} out of group ${e.group}`,
    group_removed: (e, who) => `${who} removed group ${e.group}` + (e.grants_removed ? ` with ${plural(e.grants_removed, 'grant')}` : ''),
    user_role_changed: (e, who) => `${who} gave ${e.user} the ${e.to} role (was ${e.from})`,
    asset_added: (e, who) => `${who} added asset ${e.asset}`,
    asset_changed: (e, who) => `${who} changed asset ${e.asset}` + (e.labels !== undefined ? ` (labels ${e.labels || 'none'})` : ''),
    asset_endpoint_added: (e, who) => `${who} added a ${e.protocol} endpoint on port ${e.port} to ${e.asset}`,
    asset_endpoint_changed: (e, who) => `${who} changed the ${e.protocol} endpoint of ${e.asset}`,
    asset_endpoint_removed: (e, who) => `${who} removed the ${e.protocol} endpoint of ${e.asset}`,
    telnet_login_changed: (e, who) => `${who} changed how Rampart logs in to ${e.asset} over Telnet`,
    asset_removed: (e, who) =>
      `${who} removed asset ${e.asset}` +
      (e.accounts_removed || e.grants_removed
        ? ` with ${words([e.accounts_removed ? plural(e.accounts_removed, 'account') : '', e.grants_removed ? plural(e.grants_removed, 'grant') : ''])}`
        : ''),
    account_added: (e, who) => `${who} added account ${e.account}`,
    account_removed: (e, who) => `${who} removed account ${e.account}`,
    account_secret_replaced: (e, who) => `${who} replaced the secret of ${e.account}`,
    grant_added: (e, who) => `${who} granted ${subjectText(e.subject)} ${e.actions} on ${targetText(e.target)}`,
    grant_removed: (e, who) => `${who} removed a grant`,
    grant_changed: (e, who) =>
      `${who} changed a grant: ${(e.changes || []).map((c) => `${c.field} ${c.from ?? 'unset'} → ${c.to ?? 'unset'}`).join(', ')}`,
    vault_key_rotated: (e, who) => `${who} rotated the vault key (${plural(e.secrets_reencrypted, 'secret')} re-encrypted)`,
    login_succeeded: (e) => `${e.user} logged in (${e.method}) from ${e.source}`,
    login_failed: (e) => `a login as ${e.login} from ${e.source} failed (${e.method})`,
    login_locked: (e) => `logins for ${e.key} are locked until ${time(e.until)} after ${plural(e.failures, 'failure')}`,
    login_refused: (e) => `a login as ${e.login} from ${e.source} was refused: ${e.reason}`,
    access_denied: (e) => `${e.user} was denied ${e.action} on ${e.target}: ${e.reason}`,
    session_started: (e) => `${e.user} ${sessionWhat(e.kind)} ${e.target}`,
    session_kill_requested: (e, who) => `${who} ended a session of ${e.user}: ${e.reason}`,
    session_ended: (e) =>
      `a session ended: ${e.reason}${e.exit_status === null || e.exit_status === undefined ? '' : ` (exit ${e.exit_status})`}`,
    host_key_pinned: (e, who) => `${who} pinned the host key of ${e.asset} (${e.how})`,
    host_key_cleared: (e, who) => `${who} forgot the host key of ${e.asset}`,
    host_key_rejected: (e) => `the host key of ${e.asset} did not match the pinned one`,
    recording_viewed: (e, who) => `${who} viewed the recording of a session`,
    recording_exported: (e, who) => `${who} exported the recording of a session`,
    session_watched: (e, who) => `${who} watched a live session`,
    clipboard_transfer: (e, who) =>
      `${who} ${e.allowed ? "passed" : "was refused"} ${e.bytes} bytes of clipboard ${e.direction === "to_target" ? "to" : "from"} ${e.account}`,
    file_transferred: (e) => `${e.user} transferred ${e.path} (${e.direction}, ${bytes(e.bytes)}) on ${e.target}`,
    file_changed: (e) => `${e.user} ${e.operation} ${e.path}${e.new_path ? ` to ${e.new_path}` : ''} on ${e.target}${e.succeeded ? '' : ' (failed)'}`,
    command_run: (e) => `${e.user} ran “${e.command}” on ${e.target}`,
    secret_used: (e) => `the secret of ${e.account} was used for ${e.for_user}`,
    server_started: (e) => `Rampart ${e.version} started${e.settings && e.settings.node ? ` on node ${e.settings.node}` : ''}`,
    retention_applied: (e) => `retention removed ${plural(e.sessions_removed, 'session')} older than ${time(e.before)}`,
    server_stopped: (e) => `Rampart ${e.version} stopped${e.node ? ` on node ${e.node}` : ''}`,
    unclean_stop_detected: () => 'Rampart found that its previous run did not stop cleanly',
    node_lost: (e) => `Node ${e.node} stopped answering and was declared lost by ${e.declared_by}; its live sessions were ended`,
    audit_exported: (e, who) => `${who} exported ${plural(e.events, 'audit event')}`,
    recording_failed: (e) => `the recording of a session failed: ${e.reason}`,
    web_session_ended: (e) => `the browser session of ${e.user} ended: ${e.reason}`,
    api_token_created: (e, who) => `${who} created an API token for ${e.user} (${e.scope})`,
    api_token_revoked: (e, who) => `${who} revoked an API token of ${e.user}`,
    target_connection_failed: (e) => `a connection to ${e.target} failed: ${e.reason}`,
    access_requested: (e, who) => `${who} asked for access to ${e.target} for ${e.duration} for ${e.user}: ${e.reason}`,
    access_request_decided: (e, who) =>
      e.decision === 'cancelled'
        ? `${who} withdrew the access request of ${e.user}`
        : `${who} ${e.decision} the access request of ${e.user}${e.valid_until ? ` (access until ${time(e.valid_until)})` : ''}${e.note ? `: ${e.note}` : ''}`,
    command_approval_requested: (e) => `${e.user}'s command \`${e.line}\` on ${e.target} waits for an approver (rule ${e.rule}, up to ${e.timeout})`,
    command_approval_decided: (e, who) =>
      ({
        approved: `${who} approved ${e.user}'s command \`${e.line}\``,
        denied: `${who} denied ${e.user}'s command \`${e.line}\`${e.note ? `: ${e.note}` : ''}`,
        timed_out: `nobody decided ${e.user}'s command \`${e.line}\` in time: it was not run`,
      })[e.decision] || `${e.user}'s command \`${e.line}\` was not run: its session ended while it waited`,
    report_generated: (e, who) => `${who} made a ${e.format} compliance report for ${time(e.from)} to ${time(e.to)}`,
    alert_raised: (e) => `${e.severity} alert from the ${alertSource(e.alert)}: ${e.detail}`,
    alert_acknowledged: (e, who) => `${who} acknowledged alert ${e.alert}`,
  };

  function describeEvent(record) {
    const who = actorName(record.actor);
    const event = record.event && typeof record.event === 'object' ? record.event : {};
    const sentence = SENTENCES[record.kind];
    if (sentence) {
      try {
        return sentence(event, who);
      } catch (_) {
        // a field missing in an old event: fall through to the generic sentence
      }
    }
    return `${who}: ${String(record.kind || 'event').replaceAll('_', ' ')}`;
  }

  // Nested values as dotted keys ("settings.http_listen"), each shown as text.
  function flatten(prefix, value, rows) {
    if (value && typeof value === 'object' && !Array.isArray(value)) {
      for (const [key, inner] of Object.entries(value)) flatten(prefix ? `${prefix}.${key}` : key, inner, rows);
    } else if (Array.isArray(value)) {
      rows.push([prefix, value.map((v) => (v && typeof v === 'object' ? labelText(v) : String(v))).join(', ') || '—']);
    } else {
      rows.push([prefix, value === null || value === undefined || value === '' ? '—' : String(value)]);
    }
    return rows;
  }

  // The fields of an event, folded away under its sentence.
  function eventDetails(record) {
    const rows = flatten('', record.event && typeof record.event === 'object' ? record.event : {}, []).filter(
      ([key]) => key !== 'event',
    );
    rows.push(['actor', String(actorName(record.actor))], ['hash', record.hash || '']);
    return el(
      'details',
      {},
      el('summary', {}, 'details'),
      el('dl', {}, rows.flatMap(([key, value]) => [el('dt', {}, key), el('dd', {}, value)])),
    );
  }

  function eventCell(record) {
    return el('div', { class: 'event' }, el('span', { class: 'sentence' }, describeEvent(record)), eventDetails(record));
  }

  // The command that opens a shell on `account` through this node's SSH listener.
  function sshCommand(account) {
    const host = location.hostname.replace(/^\[(.*)\]$/, '$1');
    const port = me && me.ssh && me.ssh.port;
    const portPart = port && port !== 22 ? `-p ${port} ` : '';
    return `ssh ${portPart}${me.user.name}@${account}@${host}`;
  }

  function copyButton(text) {
    const copy = button(
      'Copy',
      () =>
        attempt('copy', async () => {
          await navigator.clipboard.writeText(text);
          copy.textContent = 'Copied';
        }),
      'secondary',
    );
    return copy;
  }

  // Auditors and administrators: what is happening now and what went wrong lately.
  const TROUBLE = ['access_denied', 'login_failed', 'login_refused', 'login_locked', 'target_connection_failed', 'recording_failed', 'host_key_rejected'];

  async function dashboard() {
    const section = $('#dashboard');
    if (!section || !isAuditor()) return;
    section.hidden = false;
    const [live, ...troubles] = await Promise.all([
      apiPage('/api/v1/sessions?live=true&limit=20'),
      ...TROUBLE.map((kind) => apiPage(`/api/v1/audit/events?kind=${kind}&limit=10`)),
    ]);
    $('#live-count').textContent = live.next ? `${live.items.length}+` : String(live.items.length);
    const liveList = $('#live-sessions');
    liveList.replaceChildren(
      ...(live.items.length
        ? live.items.map((s) =>
            el(
              'li',
              {},
              `${s.user} ${sessionWhat(s.kind)} ${accountOf(s)}, for ${duration(s.started_at)} `,
              el('a', { href: `/watch?session=${s.id}` }, 'watch'),
            ),
          )
        : [el('li', { class: 'muted' }, 'no live session')]),
    );
    const recent = troubles
      .flatMap((page) => page.items)
      .sort((a, b) => (b.seq ?? 0) - (a.seq ?? 0))
      .slice(0, 10);
    await Promise.all([alertsCard(), gatewaysCard(), sinksCard(), changesCard()]);
    $('#trouble-count').textContent = String(recent.length);
    $('#recent-trouble').replaceChildren(
      ...(recent.length
        ? recent.map((e) => el('li', {}, el('span', { class: 'muted' }, time(e.at)), ' ', describeEvent(e)))
        : [el('li', { class: 'muted' }, 'no denial or failure')]),
    );
  }

  // Alerts nobody has acknowledged yet, newest first, each with its Acknowledge button.
  async function alertsCard() {
    const open = (await apiAll('/api/v1/alerts')).filter((a) => !a.acknowledged_by);
    $('#alert-count').textContent = String(open.length);
    $('#open-alerts').replaceChildren(
      ...(open.length
        ? open.slice(0, 5).map((a) => {
            const e = a.event || {};
            return el(
              'li',
              {},
              el('span', { class: 'muted' }, time(a.at)),
              ' ',
              el('strong', { class: e.severity === 'critical' ? 'error' : '' }, e.severity || 'alert'),
              ` ${e.detail || e.alert || ''} (${e.user || '?'}${e.target ? ` on ${e.target}` : ''}) `,
              e.session ? el('a', { href: `/replay?session=${e.session}` }, 'session') : null,
              ' ',
              button('Acknowledge', () =>
                attempt('acknowledge', async () => {
                  await api('POST', `/api/v1/alerts/${a.id}/acknowledge`);
                  status('alert acknowledged');
                  await alertsCard();
                }),
              ),
            );
          })
        : [el('li', { class: 'muted' }, 'no open alert')]),
    );
  }

  // The network domains' gateways by their last health check: the failing ones by name.
  async function gatewaysCard() {
    const gateways = await apiAll('/api/v1/gateways');
    const failing = gateways.filter((g) => g.health === 'failing');
    const unchecked = gateways.filter((g) => !g.health).length;
    $('#gateway-health').textContent = !gateways.length
      ? 'none'
      : failing.length
        ? `${failing.length} of ${gateways.length} failing`
        : unchecked
          ? `${plural(gateways.length, 'gateway')}, ${unchecked} not checked yet`
          : `all ${gateways.length} healthy`;
    $('#failing-gateways').replaceChildren(
      ...failing.map((g) => el('li', {}, el('strong', { class: 'error' }, g.name), ` (${g.domain}): ${g.last_error || 'failing'}`)),
    );
  }

  // The SIEM sinks against the chain head: how far behind each is, with its last error.
  async function sinksCard() {
    const { head, sinks } = await api('GET', '/api/v1/audit/sinks');
    const behind = (sinks || []).filter((s) => head - s.delivered_seq > 100);
    $('#sink-health').textContent = !(sinks || []).length
      ? 'none has delivered yet'
      : behind.length
        ? `${behind.length} of ${sinks.length} behind`
        : `all ${sinks.length} delivering`;
    $('#lagging-sinks').replaceChildren(
      ...behind.map((s) =>
        el('li', {}, el('strong', { class: 'error' }, s.sink), ` ${head - s.delivered_seq} events behind${s.last_error ? `: ${s.last_error}` : ''}`),
      ),
    );
  }

  // What people changed lately (users, assets, accounts, grants, ...), newest first.
  const CHANGE = /_(added|removed|changed|revoked|created|pinned|cleared|enrolled|reset)$/;
  async function changesCard() {
    const { items } = await apiPage('/api/v1/audit/events?limit=200');
    // A page holds the newest events, oldest first.
    const changes = items.filter((e) => CHANGE.test(e.kind)).reverse().slice(0, 8);
    $('#recent-changes').replaceChildren(
      ...(changes.length
        ? changes.map((e) => el('li', {}, el('span', { class: 'muted' }, time(e.at)), ' ', describeEvent(e)))
        : [el('li', { class: 'muted' }, 'no change yet')]),
    );
  }

  pages.home = async () => {
    await dashboard();
    const view = listView(
      '#accounts',
      (a) => {
        const command = sshCommand(a.account);
        return [
          a.account,
          a.asset,
          a.port ? `${a.host}:${a.port}` : a.host,
          labelsText(a.labels),
          el('span', { class: 'ssh-command' }, el('code', { class: 'wrap' }, command), ' ', copyButton(command)),
          el('a', { class: 'button', href: `/terminal?account=${encodeURIComponent(a.account)}` }, 'Connect'),
        ];
      },
      'no account is open to you right now',
    );
    await view.load('/api/v1/me/accounts');
    const desktops = listView(
      '#desktops',
      (a) => {
        const vnc = (a.endpoints || []).find((e) => e.protocol === 'vnc');
        return [
          a.account,
          a.asset,
          vnc ? `${a.host}:${vnc.port}` : a.host,
          labelsText(a.labels),
          el('a', { class: 'button', href: `/desktop?account=${encodeURIComponent(a.account)}` }, 'Connect'),
        ];
      },
      'no desktop is open to you right now',
    );
    await desktops.load('/api/v1/me/accounts?action=vnc:connect');
    const rdpDesktops = listView(
      '#rdp-desktops',
      (a) => {
        const rdp = (a.endpoints || []).find((e) => e.protocol === 'rdp');
        return [
          a.account,
          a.asset,
          rdp ? `${a.host}:${rdp.port}` : a.host,
          labelsText(a.labels),
          el('a', { class: 'button', href: `/desktop?account=${encodeURIComponent(a.account)}&protocol=rdp` }, 'Connect'),
        ];
      },
      'no RDP desktop is open to you right now',
    );
    await rdpDesktops.load('/api/v1/me/accounts?action=rdp:connect');
  };

  // X keysyms for KeyboardEvent.key: printable characters are Latin-1 keysyms or Unicode
  // keysyms (0x01000000 + code point); named keys from this table.
  const NAMED_KEYSYMS = {
    Backspace: 0xff08, Tab: 0xff09, Enter: 0xff0d, Escape: 0xff1b, Delete: 0xffff,
    Home: 0xff50, ArrowLeft: 0xff51, ArrowUp: 0xff52, ArrowRight: 0xff53, ArrowDown: 0xff54,
    PageUp: 0xff55, PageDown: 0xff56, End: 0xff57, Insert: 0xff63,
    Shift: 0xffe1, Control: 0xffe3, Alt: 0xffe9, AltGraph: 0xfe03, Meta: 0xffe7, CapsLock: 0xffe5,
  };
  function keysym(event) {
    const key = event.key;
    if (key in NAMED_KEYSYMS) {
      if (event.location === 2 && (key === 'Shift' || key === 'Control' || key === 'Alt' || key === 'Meta')) {
        return NAMED_KEYSYMS[key] + 1;
      }
      return NAMED_KEYSYMS[key];
    }
    const f = /^F([1-9]|1[0-2])$/.exec(key);
    if (f) return 0xffbe + Number(f[1]) - 1;
    const chars = [...key];
    if (chars.length !== 1) return null;
    const code = chars[0].codePointAt(0);
    if (code >= 0x20 && code <= 0xff) return code;
    return code > 0xff ? 0x01000000 + code : null;
  }

  // Draws the desktop stream (see rampart-desktop's screen.rs) on a canvas, one message at a
  // time, in order; returns a function taking each binary message.
  function desktopPainter(canvas, onSize) {
    const ctx = canvas.getContext('2d');
    let chain = Promise.resolve();
    const inflate = async (bytes) => {
      const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('deflate'));
      return new Uint8ClampedArray(await new Response(stream).arrayBuffer());
    };
    const draw = async (buffer) => {
      const view = new DataView(buffer);
      const kind = String.fromCharCode(view.getUint8(0));
      const u16 = (i) => view.getUint16(1 + 2 * i);
      if (kind === 'I' || kind === 'K') {
        if (kind === 'I' || canvas.width !== u16(0) || canvas.height !== u16(1)) {
          canvas.width = u16(0);
          canvas.height = u16(1);
          if (onSize) onSize(u16(0), u16(1));
        }
      } else if (kind === 'Z') {
        const [x, y, w, h] = [u16(0), u16(1), u16(2), u16(3)];
        const pixels = await inflate(new Uint8Array(buffer, 9));
        if (w > 0 && h > 0 && pixels.length === w * h * 4) ctx.putImageData(new ImageData(pixels, w, h), x, y);
      } else if (kind === 'C') {
        const [x, y, w, h, sx, sy] = [u16(0), u16(1), u16(2), u16(3), u16(4), u16(5)];
        if (w > 0 && h > 0) ctx.putImageData(ctx.getImageData(sx, sy, w, h), x, y);
      }
    };
    // A seek starts over: draws queued before it are dropped.
    let generation = 0;
    const painter = (buffer) => {
      const mine = generation;
      chain = chain.then(() => (mine === generation ? draw(buffer) : null)).catch(() => {});
      return chain;
    };
    painter.idle = () => chain;
    painter.reset = () => {
      generation += 1;
    };
    return painter;
  }

  pages.desktop = async () => {
    const params = new URLSearchParams(location.search);
    const account = params.get('account') || '';
    const protocol = params.get('protocol') === 'rdp' ? 'rdp' : 'vnc';
    const state = $('#desktop-state');
    const notice = $('#desktop-notice');
    const canvas = $('#desktop');
    const paint = desktopPainter(canvas);
    const socket = new WebSocket(websocketUrl(`/api/v1/desktop${query({ account, protocol })}`));
    socket.binaryType = 'arraybuffer';
    state.textContent = 'connecting…';
    let ended = false;
    const send = (message) => {
      if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
    };
    // The view's size (CSS pixels, scroll bars included), at the start and once the window
    // stopped changing: the target resizes its desktop to it where its protocol allows (Rampart
    // bounds and paces the requests); elsewhere the view scrolls as before.
    const wrap = $('#desktop-wrap');
    const sendSize = () => {
      const rect = wrap.getBoundingClientRect();
      send({ type: 'resize', width: Math.floor(rect.width), height: Math.floor(rect.height) });
    };
    let resizing = null;
    window.addEventListener('resize', () => {
      clearTimeout(resizing);
      resizing = setTimeout(sendSize, 400);
    });
    socket.onmessage = (event) => {
      if (typeof event.data !== 'string') {
        paint(event.data);
        return;
      }
      const message = JSON.parse(event.data);
      if (message.type === 'ready') {
        state.textContent = `connected${message.name ? `: ${message.name}` : ''}`;
        document.body.dataset.desktopSession = message.session;
        document.body.dataset.desktop = 'open';
        sendSize();
        canvas.focus();
      } else if (message.type === 'notice') {
        notice.textContent = message.text;
      } else if (message.type === 'clipboard') {
        if (navigator.clipboard) navigator.clipboard.writeText(message.text).catch(() => {});
        notice.textContent = `the desktop's clipboard was copied (${message.text.length} characters)`;
      } else if (message.type === 'end') {
        ended = true;
        state.textContent = `ended: ${message.reason}`;
        notice.textContent = `The session ended: ${message.reason}`;
        document.body.dataset.desktop = 'closed';
      }
    };
    socket.onclose = () => {
      if (!ended) {
        state.textContent = 'disconnected';
        notice.textContent = 'The connection to Rampart closed.';
      }
      document.body.dataset.desktop = 'closed';
    };
    // Keys: the same keysym on release as on press (the layout may change between), with the
    // key's position (`code`), which RDP sends as a scancode.
    const down = new Map();
    canvas.addEventListener('keydown', (event) => {
      const sym = keysym(event);
      if (sym === null) return;
      event.preventDefault();
      down.set(event.code || event.key, sym);
      send({ type: 'key', down: true, keysym: sym, code: event.code || undefined });
    });
    canvas.addEventListener('keyup', (event) => {
      const sym = down.get(event.code || event.key) ?? keysym(event);
      down.delete(event.code || event.key);
      if (sym === null) return;
      event.preventDefault();
      send({ type: 'key', down: false, keysym: sym, code: event.code || undefined });
    });
    canvas.addEventListener('blur', () => {
      for (const [code, sym] of down.entries()) send({ type: 'key', down: false, keysym: sym, code });
      down.clear();
    });
    // Mouse: canvas pixels, whatever the canvas is scaled to; buttons as RFB's mask.
    let buttons = 0;
    const at = (event) => {
      const rect = canvas.getBoundingClientRect();
      const x = Math.floor(((event.clientX - rect.left) * canvas.width) / Math.max(rect.width, 1));
      const y = Math.floor(((event.clientY - rect.top) * canvas.height) / Math.max(rect.height, 1));
      return { x: Math.max(0, Math.min(canvas.width - 1, x)), y: Math.max(0, Math.min(canvas.height - 1, y)) };
    };
    const mask = (event) => (event.buttons & 1) | ((event.buttons & 4) >> 1) | ((event.buttons & 2) << 1);
    for (const kind of ['mousemove', 'mousedown', 'mouseup']) {
      canvas.addEventListener(kind, (event) => {
        if (kind === 'mousedown') canvas.focus();
        buttons = mask(event);
        send({ type: 'pointer', ...at(event), buttons });
        event.preventDefault();
      });
    }
    canvas.addEventListener('contextmenu', (event) => event.preventDefault());
    canvas.addEventListener('wheel', (event) => {
      event.preventDefault();
      const bit = event.deltaY < 0 ? 8 : 16;
      const where = at(event);
      send({ type: 'pointer', ...where, buttons: buttons | bit });
      send({ type: 'pointer', ...where, buttons });
    }, { passive: false });
    // Paste into the desktop's clipboard (the grant decides). At most PASTE_LIMIT characters
    // go (whole characters, so the message stays within the WebSocket's bound); a longer paste
    // is cut, and the page says so.
    const PASTE_LIMIT = 8000;
    canvas.addEventListener('paste', (event) => {
      const text = event.clipboardData ? event.clipboardData.getData('text/plain') : '';
      if (!text) return;
      const characters = Array.from(text);
      if (characters.length > PASTE_LIMIT) {
        const count = (n) => n.toLocaleString('en');
        notice.textContent = `the paste was cut: only its first ${count(PASTE_LIMIT)} of ${count(characters.length)} characters were sent to the desktop`;
      }
      send({ type: 'clipboard', text: characters.slice(0, PASTE_LIMIT).join('') });
    });
    window.rampartDesktop = {
      canvas,
      idle: () => paint.idle(),
      sendClipboard: (text) => send({ type: 'clipboard', text }),
      sendSize: (width, height) => send({ type: 'resize', width, height }),
    };
    window.addEventListener('beforeunload', () => socket.close());
  };

  function sendBytes(socket, bytes) {
    // Bounded messages: a long paste goes in pieces.
    for (let at = 0; at < bytes.length; at += 16384) {
      socket.send(bytes.subarray(at, at + 16384));
    }
  }

  function newTerminal(options) {
    const term = new window.Terminal({
      cursorBlink: true,
      fontSize: 14,
      scrollback: 5000,
      ...options,
    });
    const fit = new window.FitAddon.FitAddon();
    term.loadAddon(fit);
    term.open($('#terminal'));
    fit.fit();
    window.addEventListener('resize', () => fit.fit());
    window.rampartTerminal = term;
    return term;
  }

  pages.terminal = async () => {
    const account = new URLSearchParams(location.search).get('account') || '';
    const state = $('#terminal-state');
    const term = newTerminal({});
    term.focus();
    const path = `/api/v1/terminal${query({ account, cols: term.cols, rows: term.rows })}`;
    const socket = new WebSocket(websocketUrl(path));
    socket.binaryType = 'arraybuffer';
    const encoder = new TextEncoder();
    state.textContent = 'connecting…';
    socket.onopen = () => {
      state.textContent = 'connected';
    };
    socket.onmessage = (event) => {
      if (typeof event.data === 'string') {
        const message = JSON.parse(event.data);
        if (message.type === 'exit') state.textContent = `exited with status ${message.status}`;
        return;
      }
      term.write(new Uint8Array(event.data));
    };
    socket.onclose = () => {
      if (!state.textContent.startsWith('exited')) state.textContent = 'disconnected';
      document.body.dataset.terminal = 'closed';
      term.write('\r\n[connection closed]\r\n');
    };
    term.onData((data) => {
      if (socket.readyState === WebSocket.OPEN) sendBytes(socket, encoder.encode(data));
    });
    term.onBinary((data) => {
      if (socket.readyState === WebSocket.OPEN) {
        sendBytes(socket, Uint8Array.from(data, (c) => c.charCodeAt(0) & 0xff));
      }
    });
    term.onResize(({ cols, rows }) => {
      if (socket.readyState === WebSocket.OPEN) {
        socket.send(JSON.stringify({ type: 'resize', cols, rows }));
      }
    });
    window.addEventListener('beforeunload', () => socket.close());
  };

  pages.watch = async () => {
    const id = new URLSearchParams(location.search).get('session') || '';
    const state = $('#watch-state');
    const term = newTerminal({ disableStdin: true, cursorBlink: false });
    const socket = new WebSocket(websocketUrl(`/api/v1/sessions/${encodeURIComponent(id)}/watch`));
    socket.binaryType = 'arraybuffer';
    state.textContent = 'connecting…';
    socket.onopen = () => {
      state.textContent = 'watching: output from now on';
    };
    socket.onmessage = (event) => {
      if (typeof event.data !== 'string') {
        term.write(new Uint8Array(event.data));
        return;
      }
      // The session's screen comes first, drawn at the session's own size.
      const message = JSON.parse(event.data);
      if (message.type === 'screen') {
        term.resize(message.cols, message.rows);
        state.textContent = 'watching: the current screen, then live';
      }
    };
    socket.onclose = () => {
      state.textContent = 'not watching: the session ended, or the node carrying it cannot be reached';
    };
  };

  const duration = (from, to) => {
    const ms = (to ? Date.parse(to) : Date.now()) - Date.parse(from);
    if (!Number.isFinite(ms) || ms < 0) return '';
    const s = Math.floor(ms / 1000);
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
    return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  };
  const RECORDED_KINDS = ['shell', 'exec', 'vnc', 'rdp'];
  // A terminal recording exists for shell and exec sessions the grant recorded, once started.
  const hasRecording = (s) => Boolean(s.recorded) && RECORDED_KINDS.includes(String(s.kind));
  const accountOf = (s) => (String(s.account).includes('@') ? s.account : `${s.account}@${s.asset}`);

  function killButton(s, reasonInput, after) {
    return button(
      'Kill',
      () =>
        attempt('kill', async () => {
          const reason = reasonInput ? reasonInput.value.trim() : '';
          const ok = await confirmAction(
            `Kill this session of ${s.user}?`,
            `Ends ${s.user}'s ${s.kind} session on ${accountOf(s)} (live for ${duration(s.started_at)}) now` +
              (reason ? `, with the reason “${reason}”.` : '.'),
            'Kill session',
          );
          if (!ok) return;
          await api('POST', `/api/v1/sessions/${s.id}/kill`, reason ? { reason } : {});
          status(`session ${s.id} is being ended`);
          await after();
        }),
      'danger',
    );
  }

  function sessionRow(view) {
    return (s) => {
      const actions = [];
      if (!s.ended_at && isAuditor()) {
        actions.push(el('a', { class: 'button', href: `/watch?session=${s.id}` }, 'Watch'));
        const reason = el('input', { placeholder: 'reason', 'aria-label': 'kill reason', size: 14 });
        actions.push(reason, killButton(s, reason, () => view.reload()));
      }
      if (s.ended_at && hasRecording(s)) {
        actions.push(el('a', { class: 'button', href: `/replay?session=${s.id}` }, 'Replay'));
        const verdict = el('span', {});
        actions.push(
          button('Verify', () =>
            attempt('verify', async () => {
              const check = await api('GET', `/api/v1/sessions/${s.id}/recording/verification`);
              verdict.textContent = check.verified ? 'verified' : `NOT verified: ${check.problem}`;
              verdict.className = check.verified ? 'ok' : 'error';
            }),
          ),
          verdict,
        );
      }
      const ended = s.ended_at ? time(s.ended_at) : el('strong', {}, 'live');
      const outcome = [s.exit_status === null || s.exit_status === undefined ? '' : `exit ${s.exit_status}`, s.end_reason || '']
        .filter(Boolean)
        .join(', ');
      return [
        time(s.started_at),
        s.user,
        el('span', {}, accountOf(s), el('br', {}), el('small', { class: 'muted' }, `from ${s.source_addr}${s.route ? `, ${s.route}` : ''}`)),
        s.breakglass
          ? el('span', {}, s.command ? el('span', {}, s.kind, el('br', {}), el('code', { class: 'wrap' }, s.command)) : s.kind, el('br', {}), el('strong', { class: 'breakglass' }, 'break-glass'))
          : s.command ? el('span', {}, s.kind, el('br', {}), el('code', { class: 'wrap' }, s.command)) : s.kind,
        duration(s.started_at, s.ended_at),
        ended,
        outcome,
        el('span', { class: 'actions' }, actions),
      ];
    };
  }

  pages.sessions = async () => {
    const view = {};
    Object.assign(view, listView('#sessions', sessionRow(view), 'no session'));
    onSubmit('#session-filter', (form) => attempt('sessions', () => view.load(withParams('/api/v1/sessions', formValues(form)))));
    await view.load('/api/v1/sessions');
  };

  // The player's position for a moment of the session: seconds since it started.
  const offsetIn = (session, at) => Math.max(0, (Date.parse(at) - Date.parse(session.started_at)) / 1000);
  const clock = (seconds) => `${Math.floor(seconds / 60)}:${String(Math.floor(seconds % 60)).padStart(2, '0')}`;

  // A desktop recording's raw stream: frames of (tag, microseconds since the start, length,
  // bytes); the screen's (`o`) are the desktop stream.
  function desktopFrames(buffer) {
    const view = new DataView(buffer);
    const frames = [];
    let at = 0;
    while (at + 13 <= buffer.byteLength) {
      const tag = String.fromCharCode(view.getUint8(at));
      const micros = Number(view.getBigUint64(at + 1));
      const length = view.getUint32(at + 9);
      if (at + 13 + length > buffer.byteLength) break;
      if (tag === 'o' && length > 0) {
        const data = buffer.slice(at + 13, at + 13 + length);
        const previous = frames[frames.length - 1];
        // A key frame's screen (the `Z` after its `K`) is written a moment after the `K`: it
        // takes the K's time, so seeking to the key frame draws it whole.
        const t = previous && previous.key && previous.data.byteLength === 5 ? previous.t : micros / 1e6;
        frames.push({ t, data, key: new Uint8Array(data)[0] === 0x4b });
      }
      at += 13 + length;
    }
    return frames;
  }

  // Replays a desktop session on a canvas: play, pause, seek (from the last key frame before
  // the moment), speed.
  async function desktopReplay(id) {
    const container = $('#player');
    const canvas = el('canvas', { id: 'desktop', width: '1', height: '1' });
    container.replaceChildren(canvas);
    const response = await fetch(`/api/v1/sessions/${encodeURIComponent(id)}/recording/stream`, { credentials: 'same-origin' });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      container.replaceChildren(el('p', { class: 'error' }, `the recording cannot be replayed: ${body.message || response.status}`));
      return;
    }
    const frames = desktopFrames(await response.arrayBuffer());
    const end = frames.length ? frames[frames.length - 1].t : 0;
    const paint = desktopPainter(canvas);
    let next = 0;
    let clock = 0;
    let playing = false;
    let last = 0;
    const slider = el('input', { type: 'range', min: '0', max: String(end), step: '0.01', value: '0', 'aria-label': 'position' });
    const shown = el('span', { id: 'replay-clock' }, '');
    const speeds = el('select', { id: 'speed', 'aria-label': 'speed' }, ['0.5', '1', '2', '4'].map((v) => el('option', { value: v }, `${v}×`)));
    speeds.value = '1';
    const play = el('button', { type: 'button', id: 'replay-play' }, 'Play');
    const update = () => {
      slider.value = String(clock);
      shown.textContent = `${clock.toFixed(1)} s of ${end.toFixed(1)} s`;
      play.textContent = playing ? 'Pause' : 'Play';
    };
    const drawTo = (t) => {
      while (next < frames.length && frames[next].t <= t) {
        paint(frames[next].data);
        next += 1;
      }
    };
    const seek = (t) => {
      const target = Math.max(0, Math.min(end, t));
      let start = 0;
      for (let i = 0; i < frames.length && frames[i].t <= target; i += 1) if (frames[i].key) start = i;
      paint.reset();
      next = start;
      clock = target;
      drawTo(target);
      update();
    };
    const tick = (now) => {
      if (!playing) return;
      clock += ((now - last) / 1000) * Number(speeds.value);
      last = now;
      if (clock >= end) {
        clock = end;
        playing = false;
      }
      drawTo(clock);
      update();
      if (playing) requestAnimationFrame(tick);
    };
    play.addEventListener('click', () => {
      playing = !playing;
      if (playing) {
        if (clock >= end) seek(0);
        last = performance.now();
        requestAnimationFrame(tick);
      }
      update();
    });
    slider.addEventListener('input', () => seek(Number(slider.value)));
    container.before(el('p', { class: 'desktop-replay-controls' }, play, ' ', slider, ' ', shown, ' ', el('label', {}, 'Speed ', speeds)));
    seek(0);
    window.rampartDesktopReplay = {
      end,
      keyTimes: frames.filter((f) => f.key).map((f) => f.t),
      seek: async (t) => {
        seek(t);
        await paint.idle();
      },
    };
    document.body.dataset.replay = 'ready';
  }

  pages.replay = async () => {
    const params = new URLSearchParams(location.search);
    const id = params.get('session') || '';
    const session = await api('GET', `/api/v1/sessions/${encodeURIComponent(id)}`);
    $('#session-summary').textContent =
      `${session.user} on ${accountOf(session)} (${session.kind}) from ${session.source_addr}, ` +
      `${time(session.started_at)} to ${time(session.ended_at) || 'now'} (${duration(session.started_at, session.ended_at)})`;
    const verdict = $('#verification');
    try {
      const check = await api('GET', `/api/v1/sessions/${encodeURIComponent(id)}/recording/verification`);
      verdict.textContent = check.verified
        ? `verified${check.complete ? '' : ' (incomplete)'}: ${check.chunks} chunks, ${check.bytes} bytes`
        : `NOT verified: ${check.problem}`;
      verdict.className = check.verified ? 'ok' : 'error';
    } catch (err) {
      verdict.textContent = err.message;
      verdict.className = 'error';
    }
    if (String(session.kind) === 'vnc' || String(session.kind) === 'rdp') {
      await desktopReplay(id);
      $('#replay-commands').closest('aside').hidden = true;
      return;
    }
    const container = $('#player');
    const speeds = el('select', { id: 'speed', 'aria-label': 'speed' }, ['0.5', '1', '2', '4'].map((s) => el('option', { value: s }, `${s}×`)));
    speeds.value = '1';
    let player = null;
    const at = params.get('at');
    const create = (startAt) => {
      if (player) player.dispose();
      container.replaceChildren();
      player = window.AsciinemaPlayer.create(`/api/v1/sessions/${encodeURIComponent(id)}/recording`, container, {
        speed: Number(speeds.value),
        // The whole terminal in the window: as wide as fits, and no taller than the view.
        fit: 'both',
        preload: true,
        startAt,
      });
      window.rampartPlayer = player;
    };
    speeds.addEventListener('change', () => create(player ? player.getCurrentTime() : 0));
    container.parentElement.before(el('p', {}, el('label', {}, 'Speed ', speeds), ' · space: play/pause, ←/→: seek'));
    // No idle-time limit: the player's clock is the session's, so a command's moment seeks right.
    create(at ? Math.max(0, offsetIn(session, at) - 1) : 0);
    // The session's commands beside the player; each one seeks it to its moment.
    const list = $('#replay-commands');
    try {
      const commands = (await apiAll(withParams('/api/v1/commands', { user: session.user, since: session.started_at }))).filter(
        (c) => c.session === session.id,
      );
      list.replaceChildren(
        ...(commands.length
          ? commands.map((c) => {
              const offset = offsetIn(session, c.at);
              return el(
                'li',
                {},
                button(clock(offset), () => player.seek(Math.max(0, offset - 1)), 'link'),
                ' ',
                el('code', {}, c.command),
              );
            })
          : [el('li', { class: 'muted' }, 'no command logged')]),
      );
    } catch (err) {
      list.replaceChildren(el('li', { class: 'error' }, err.message));
    }
  };

  pages.commands = async () => {
    const view = listView(
      '#commands',
      (c) => [
        time(c.at || ''),
        c.user,
        c.asset ? `${c.account}@${c.asset}` : c.account || '',
        el('code', {}, c.command),
        c.session
          ? el('a', { href: `/replay?session=${encodeURIComponent(c.session)}&at=${encodeURIComponent(c.at)}`, class: 'replay-at' }, 'replay at this moment')
          : '',
      ],
      'no command',
    );
    onSubmit('#command-filter', (form) => attempt('commands', () => view.load(withParams('/api/v1/commands', formValues(form)))));
    await view.load('/api/v1/commands');
  };

  // Databases: the user's token (shown once) and the query log; `?session=ID` is one
  // session's statements in order, each with its time from the session's first one.
  pages.databases = async () => {
    const session = new URLSearchParams(location.search).get('session');
    let first = null;
    const since = (at) => {
      const ms = Date.parse(at);
      if (first === null) first = ms;
      return `+${((ms - first) / 1000).toFixed(3)} s`;
    };
    const result = (q) => (q.record.error ? `error: ${q.record.error}` : (q.record.status || []).join(', '));
    const view = listView(
      '#queries',
      (q) => [
        session ? since(q.at) : time(q.at),
        q.user,
        q.target,
        el('a', { href: `/databases?session=${encodeURIComponent(q.session)}` }, q.session.slice(0, 8)),
        String(q.record.seq ?? ''),
        el('code', {}, q.record.statement || ''),
        q.record.kind === 'blocked' ? el('strong', {}, result(q)) : result(q),
      ],
      'no statement',
    );
    onSubmit('#db-token-form', (form) =>
      attempt('database token', async () => {
        const made = await api('POST', '/api/v1/db-tokens', formValues(form));
        $('#db-token-secret').textContent = made.secret;
        $('#db-token').hidden = false;
        status('Database token created: copy it now, it is not shown again.');
      }),
    );
    onSubmit('#query-filter', (form) => attempt('queries', () => view.load(withParams('/api/v1/queries', formValues(form)))));
    if (session) {
      $('#query-filter [name=session]').value = session;
      $('#queries-title').textContent = `Session ${session}: its statements in order`;
    }
    await view.load(withParams('/api/v1/queries', session ? { session } : {}));
  };

  // Kubernetes: the clusters (assets with a kubernetes endpoint) the user may reach for any
  // Kubernetes action, each with a download of a kubeconfig holding a fresh personal token
  // (`POST /api/v1/kube/config`, which asks for a login with the second factor as database
  // tokens do). The token is in that one file only: the page never shows it again.
  const KUBE_ACTIONS = ['kubernetes:read', 'kubernetes:write', 'kubernetes:exec', 'kubernetes:port_forward'];
  pages.kubernetes = async () => {
    const clusters = new Map();
    for (const action of KUBE_ACTIONS) {
      const accounts = await apiAll(`/api/v1/me/accounts${query({ action })}`);
      for (const a of accounts) {
        if (!(a.endpoints || []).some((e) => e.protocol === 'kubernetes')) continue;
        const known = clusters.get(a.account) || { ...a, actions: [] };
        known.actions.push(action.replace('kubernetes:', '').replace('_', '-'));
        clusters.set(a.account, known);
      }
    }
    const rows = [...clusters.values()].sort((x, y) => x.account.localeCompare(y.account));
    // One reachable account on an asset: the kubeconfig names the asset alone.
    const onAsset = (asset) => rows.filter((c) => c.asset === asset).length;
    const download = (c) =>
      attempt('kubeconfig', async () => {
        const asset = onAsset(c.asset) === 1 ? c.asset : c.account;
        const made = await api('POST', '/api/v1/kube/config', { asset, ttl: formValues($('#kube-ttl')).ttl || '8h' });
        const file = `${asset.replace('@', '-')}.kubeconfig`;
        const link = el('a', { href: URL.createObjectURL(new Blob([made.kubeconfig], { type: 'application/yaml' })), download: file });
        document.body.append(link);
        link.click();
        link.remove();
        setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
        $('#kube-file').textContent = file;
        $('#kube-command').textContent = `kubectl --kubeconfig ${file} get pods`;
        $('#kube-made').hidden = false;
        status(`Kubeconfig for ${c.asset} downloaded: its token is not shown again.`);
      });
    // The lifetime field is read by the buttons; Enter in it downloads nothing.
    onSubmit('#kube-ttl', () => {});
    fill(
      '#kube-clusters',
      rows,
      (c) => [
        c.asset,
        c.login,
        labelsText(c.labels),
        c.actions.join(', '),
        el('button', { type: 'button', class: 'kube-download', onclick: () => download(c) }, 'Download kubeconfig'),
      ],
      'no Kubernetes cluster is open to you right now',
    );
  };

  // What raised an alert, in words: a command rule or one of the detectors.
  const ALERT_SOURCES = {
    command_rule: 'command rule',
    privilege_escalation: 'privilege escalation detector',
    new_source: 'new source address detector',
    off_hours: 'off-hours login detector',
    failed_logins: 'failed login burst detector',
    bulk_transfer: 'bulk transfer detector',
    new_asset: 'new asset detector',
  };
  const alertSource = (name) => ALERT_SOURCES[name] || String(name || 'alert').replaceAll('_', ' ');

  // Alerts, newest first: open ones or all. Each links to its session (replay) and to the
  // audit events that name that session (or, without one, to its own event).
  pages.alerts = async () => {
    let view = null;
    const row = (a) => {
      const e = a.event || {};
      const links = [];
      if (e.session) {
        links.push(el('a', { href: `/replay?session=${encodeURIComponent(e.session)}`, class: 'alert-session' }, `session ${e.session.slice(0, 8)}`));
        links.push(' · ');
        links.push(el('a', { href: `/audit?contains=${encodeURIComponent(e.session)}`, class: 'alert-events' }, 'its events'));
      } else {
        links.push(el('span', { class: 'muted' }, 'none'), ' · ');
        links.push(el('a', { href: `/audit?kind=alert_raised&contains=${encodeURIComponent(e.detail || '')}`, class: 'alert-events' }, 'its event'));
      }
      const state = a.acknowledged_by
        ? el('span', { class: 'muted' }, `acknowledged by ${String(a.acknowledged_by).replace(/^user:/, '')} ${time(a.acknowledged_at)}`)
        : el(
            'span',
            { class: 'actions' },
            el('strong', {}, 'open'),
            ' ',
            button('Acknowledge', () =>
              attempt('acknowledge', async () => {
                await api('POST', `/api/v1/alerts/${a.id}/acknowledge`);
                status(`alert ${a.id} acknowledged`);
                await view.reload();
              }),
            ),
          );
      return [
        time(a.at),
        el('strong', { class: e.severity === 'critical' ? 'error' : 'warning' }, e.severity || 'alert'),
        alertSource(e.alert),
        e.detail || '',
        e.user || '—',
        e.target || '—',
        el('span', {}, ...links),
        state,
      ];
    };
    view = listView('#alerts', row, 'no alert');
    const path = (show) => withParams('/api/v1/alerts', show === 'all' ? {} : { open: true });
    onSubmit('#alert-filter', (form) => attempt('alerts', () => view.load(path(formValues(form).show))));
    await view.load(path('open'));
  };

  // Invite: an enrolment link sets the user's password and TOTP second factor (no login: the
  // token in the address is the credential).
  pages.invite = async () => {
    const token = new URLSearchParams(location.search).get('token') || '';
    const path = `/api/v1/invites/${encodeURIComponent(token)}`;
    await attempt('invite', async () => {
      const started = await api('POST', `${path}/start`);
      $('#invite-for').textContent = `Set the password and second factor of ${started.user}.`;
      $('#invite-uri').textContent = started.otpauth_uri;
      $('#invite-form').hidden = false;
    });
    onSubmit('#invite-form', (form) =>
      attempt('invite', async () => {
        const done = await api('POST', path, formValues(form));
        $('#invite-form').hidden = true;
        status(`Done: ${done.message}.`);
      }),
    );
  };

  // Account: the user's own password (the current one checked) and SSH keys. A new password or
  // a removed key ends the user's web sessions: back to the login page.
  pages.account = async () => {
    const relogin = (message) => {
      status(message);
      setTimeout(() => loginPage(), 1500);
    };
    const showKeys = (user) =>
      fill('#my-keys', user.keys, (k) => [
        el('code', {}, k.fingerprint),
        k.algorithm,
        k.comment,
        button('Remove', () =>
          attempt('remove key', async () => {
            await api('POST', '/api/v1/me/keys/remove', { fingerprint: k.fingerprint });
            relogin(`Key ${k.fingerprint} removed: log in again.`);
          }),
        'secondary'),
      ], 'no SSH key');
    showKeys(me.user);
    const showPasskeys = async () => {
      const passkeys = await api('GET', '/api/v1/me/passkeys');
      fill('#my-passkeys', passkeys, (p) => [
        p.name,
        time(p.created_at),
        p.last_used_at ? time(p.last_used_at) : 'never',
        button('Remove', () =>
          attempt('remove passkey', async () => {
            const sure = await confirmAction(`Remove the passkey "${p.name}"?`, 'It will no longer log you in, and your web sessions end.', 'Remove');
            if (!sure) return;
            await api('DELETE', `/api/v1/me/passkeys/${encodeURIComponent(p.id)}`);
            relogin(`Passkey "${p.name}" removed: log in again.`);
          }),
        'secondary'),
      ], 'no passkey');
    };
    await attempt('passkeys', showPasskeys);
    onSubmit('#passkey-form', (form) =>
      attempt('register passkey', async () => {
        const name = (formValues(form).name || '').trim();
        const started = await api('POST', '/api/v1/me/passkeys/start');
        const credential = await navigator.credentials.create({ publicKey: passkeyCreation(started.options) });
        if (!credential) throw new Error('no passkey was made');
        await api('POST', '/api/v1/me/passkeys', { name, credential: registrationJSON(credential) });
        relogin(`Passkey "${name}" registered: log in again.`);
      }),
    );
    $('#totp-state').textContent = me.user.mfa_enrolled
      ? 'Your authenticator app is set up. Setting up another replaces it.'
      : 'No second factor yet.';
    onSubmit('#totp-start-form', () =>
      attempt('second factor', async () => {
        const started = await api('POST', '/api/v1/me/totp', { replace: me.user.mfa_enrolled });
        $('#totp-uri').textContent = started.otpauth_uri;
        $('#totp-confirm-form').hidden = false;
      }),
    );
    onSubmit('#totp-confirm-form', (form) =>
      attempt('second factor', async () => {
        const done = await api('POST', '/api/v1/me/totp/confirm', formValues(form));
        relogin(`Second factor enrolled: ${done.message.replace(/^second factor enrolled: /, '')}.`);
      }),
    );
    onSubmit('#password-form', (form) =>
      attempt('password', async () => {
        const done = await api('POST', '/api/v1/me/password', formValues(form));
        relogin(`Password changed: ${done.message.replace(/^password changed: /, '')}.`);
      }),
    );
    onSubmit('#key-form', (form) =>
      attempt('add key', async () => {
        const user = await api('POST', '/api/v1/me/keys', formValues(form));
        showKeys(user);
        form.reset();
        status('Key added.');
      }),
    );
    // API tokens: the user's own (shown once when made), revocable here.
    const showTokens = async () => {
      const tokens = await apiAll(`/api/v1/tokens${query({ user: me.user.name })}`);
      fill('#my-tokens', tokens.filter((t) => !t.revoked_at), (t) => [
        t.description || '-',
        t.scope,
        time(t.created_at),
        t.expires_at ? time(t.expires_at) : 'never',
        button('Revoke', () =>
          attempt('revoke token', async () => {
            await api('DELETE', `/api/v1/tokens/${encodeURIComponent(t.id)}`);
            await showTokens();
            status('API token revoked.');
          }),
        'secondary'),
      ], 'no API token');
    };
    await attempt('API tokens', showTokens);
    onSubmit('#token-form', (form) =>
      attempt('API token', async () => {
        const made = await api('POST', '/api/v1/tokens', formValues(form));
        $('#token-secret').textContent = made.secret;
        $('#token-made').hidden = false;
        form.reset();
        await showTokens();
        status('API token created: copy it now, it is not shown again.');
      }),
    );
  };

  // SSH: sign a pasted public key (the certificate shown and downloadable), and approve or
  // deny a `rampart login` request by its code (`?code=` from the link the CLI prints).
  pages.ssh = async () => {
    onSubmit('#ssh-cert-form', (form) =>
      attempt('SSH certificate', async () => {
        const made = await api('POST', '/api/v1/me/ssh-certificate', formValues(form));
        $('#ssh-cert-text').textContent = made.certificate;
        $('#ssh-cert-until').textContent = time(made.valid_before);
        $('#ssh-cert-principal').textContent = made.principal;
        const link = $('#ssh-cert-download');
        link.href = URL.createObjectURL(new Blob([made.certificate + '\n'], { type: 'text/plain' }));
        $('#ssh-cert').hidden = false;
        status('Certificate signed.');
      }),
    );
    let code = null;
    const answer = (approve) =>
      attempt('SSH login', async () => {
        const done = await api('POST', `/api/v1/me/ssh-logins/${encodeURIComponent(code)}`, { approve });
        $('#ssh-login-request').hidden = true;
        $('#ssh-login-result').textContent = done.approved
          ? `Approved: the login has a certificate for ${done.principal} until ${time(done.valid_before)}.`
          : 'Denied: the login gets no certificate.';
      });
    $('#ssh-login-approve').addEventListener('click', () => answer(true));
    $('#ssh-login-deny').addEventListener('click', () => answer(false));
    const look = (typed) =>
      attempt('SSH login', async () => {
        $('#ssh-login-result').textContent = '';
        const request = await api('GET', `/api/v1/me/ssh-logins/${encodeURIComponent(typed)}`);
        code = request.user_code;
        $('#ssh-login-fingerprint').textContent = request.fingerprint;
        $('#ssh-login-source').textContent = request.source;
        $('#ssh-login-request').hidden = false;
      });
    onSubmit('#ssh-login-form', (form) => look(formValues(form).code || ''));
    const approval = new URLSearchParams(location.search).get('approve');
    if (approval) {
      const path = `/api/v1/me/ssh-approvals/${encodeURIComponent(approval)}`;
      const decide = (approve) =>
        attempt('SSH login', async () => {
          await api('POST', path, { approve });
          $('#ssh-approval-approve').hidden = true;
          $('#ssh-approval-deny').hidden = true;
          $('#ssh-approval-result').textContent = approve
            ? 'Approved: the SSH login goes on.'
            : 'Denied: the SSH login is refused.';
        });
      $('#ssh-approval-approve').addEventListener('click', () => decide(true));
      $('#ssh-approval-deny').addEventListener('click', () => decide(false));
      await attempt('SSH login', async () => {
        const waiting = await api('GET', path);
        $('#ssh-approval-login').textContent = waiting.login;
        $('#ssh-approval-source').textContent = waiting.source;
        $('#ssh-approval-card').hidden = false;
      });
    }
    const given = new URLSearchParams(location.search).get('code');
    if (given) {
      $('#ssh-login-form [name=code]').value = given;
      await look(given);
    }
  };

  pages.audit = async () => {
    const view = listView('#events', (e) => [e.seq ?? '', time(e.at), e.kind, eventCell(e)], 'no event', { newestFirst: true });
    // A link may carry the filter (`/audit?contains=SESSION`, from the alerts page).
    const given = {};
    for (const [key, value] of new URLSearchParams(location.search)) {
      const input = $(`#audit-filter [name=${key}]`);
      if (input && value) {
        input.value = value;
        given[key] = value;
      }
    }
    onSubmit('#audit-filter', (form) => {
      const values = formValues(form);
      for (const format of ['csv', 'jsonl']) {
        const params = { format };
        if (values.since) params.since = values.since;
        $(`#export-${format}`).href = `/api/v1/audit/export${query(params)}`;
      }
      attempt('audit', () => view.load(withParams('/api/v1/audit/events', values)));
    });
    await view.load(withParams('/api/v1/audit/events', given));
  };

  pages.requests = async () => {
    const decide = (r, verb) =>
      button(verb === 'approve' ? 'Approve' : 'Deny', () =>
        attempt(verb, async () => {
          const note = $('#request-note').value.trim();
          const question = `${verb === 'approve' ? 'Approve' : 'Deny'} ${r.requester}'s request for ${r.target}?`;
          const consequence = verb === 'approve'
            ? `${r.requester} gets a grant for ${r.duration} from now, which ends on its own.`
            : `${r.requester} is told it was denied${note ? ` with your note “${note}”` : ''}.`;
          if (!(await confirmAction(question, consequence, verb === 'approve' ? 'Approve' : 'Deny'))) return;
          await api('POST', `/api/v1/requests/${r.id}/${verb}`, note ? { note } : {});
          status(`${verb === 'approve' ? 'approved' : 'denied'}: ${r.requester}'s request for ${r.target}`);
          await view.reload();
        }),
      verb === 'deny' ? 'danger' : undefined);
    const cancel = (r) =>
      button('Cancel', () =>
        attempt('cancel', async () => {
          await api('POST', `/api/v1/requests/${r.id}/cancel`);
          status(`cancelled your request for ${r.target}`);
          await view.reload();
        }));
    const decided = (r) => {
      if (!r.decided_at) return '';
      const until = r.valid_until ? `, access until ${time(r.valid_until)}` : '';
      const note = r.note ? ` (${r.note})` : '';
      return `${time(r.decided_at)} by ${r.decided_by}${until}${note}`;
    };
    const view = listView(
      '#requests',
      (r) => [
        time(r.created_at),
        r.mine ? `${r.requester} (you)` : r.requester,
        r.target,
        r.accounts.length ? r.accounts.join(', ') : 'any',
        r.duration,
        r.reason,
        r.state,
        decided(r),
        el('span', {}, r.can_decide ? [decide(r, 'approve'), ' ', decide(r, 'deny')] : [], r.mine && r.state === 'pending' ? cancel(r) : null),
      ],
      'no request',
    );
    onSubmit('#request-create', (form) =>
      attempt('request', async () => {
        const values = formValues(form);
        const body = { asset: values.asset, duration: values.duration, reason: values.reason };
        if (values.account) body.accounts = [values.account];
        await api('POST', '/api/v1/requests', body);
        status(`asked for ${values.asset} for ${values.duration}: an approver has been told`);
        form.reset();
        await view.reload();
      }),
    );
    onSubmit('#request-filter', (form) => attempt('requests', () => view.load(withParams('/api/v1/requests', formValues(form)))));
    await view.load('/api/v1/requests');
    await heldCommands();
  };

  // Shell lines an approve rule holds (on the Requests page): approve or deny with a note the
  // user sees in their session. Refreshed every few seconds, since the user waits.
  async function heldCommands() {
    const decide = (a, verb) =>
      button(verb === 'approve' ? 'Approve' : 'Deny', () =>
        attempt(verb, async () => {
          const note = $('#approval-note').value.trim();
          const question = `${verb === 'approve' ? 'Approve' : 'Deny'} ${a.requester}'s command \`${a.line}\` on ${a.target}?`;
          const consequence = verb === 'approve'
            ? 'The command runs on the target now.'
            : `The line is cleared and ${a.requester} is told${note ? ` “${note}”` : ''}.`;
          if (!(await confirmAction(question, consequence, verb === 'approve' ? 'Approve' : 'Deny'))) return;
          await api('POST', `/api/v1/command-approvals/${a.id}/${verb}`, note ? { note } : {});
          status(`${verb === 'approve' ? 'approved' : 'denied'}: ${a.requester}'s command ${a.line}`);
          await held.reload();
        }),
      verb === 'deny' ? 'danger' : undefined);
    const stateText = (a) => ({ timed_out: 'timed out (denied)', pending: 'waiting' })[a.state] || a.state;
    const decided = (a) => {
      if (!a.decided_at) return `waits until ${time(a.expires_at)}`;
      const note = a.note ? ` (${a.note})` : '';
      return `${time(a.decided_at)} by ${a.decided_by}${note}`;
    };
    const held = listView(
      '#command-approvals',
      (a) => [
        time(a.created_at),
        a.mine ? `${a.requester} (you)` : a.requester,
        a.target,
        el('code', {}, a.line),
        a.rule,
        stateText(a),
        decided(a),
        el('span', {}, a.can_decide ? [decide(a, 'approve'), ' ', decide(a, 'deny')] : []),
      ],
      'no command waits for approval',
    );
    await held.load('/api/v1/command-approvals?state=all');
    setInterval(() => {
      if (!document.querySelector('dialog[open]')) held.reload().catch(() => {});
    }, 4000);
  }

  pages.reports = async () => {
    const form = $('#report-period');
    const today = new Date();
    const before = new Date(today.getTime() - 29 * 24 * 3600 * 1000);
    const day = (d) => d.toISOString().slice(0, 10);
    form.elements.from.value = day(before);
    form.elements.to.value = day(today);
    const show = async (values) => {
      const period = { from: values.from, to: values.to };
      const report = await api('GET', `/api/v1/reports${query({ ...period, format: 'json' })}`);
      for (const format of ['html', 'csv', 'pdf']) {
        $(`#report-${format}`).href = `/api/v1/reports${query({ ...period, format })}`;
      }
      $('#report-links').hidden = false;
      $('#report-title').textContent = `${report.period.from_date} to ${report.period.to_date}: the audit trail ${report.verification.verified ? 'verifies' : 'does NOT verify'}`;
      fill('#report-summary', report.summary, (row) => [row.label, String(row.count), row.controls]);
    };
    onSubmit('#report-period', (f) => attempt('report', () => show(formValues(f))));
    await show(formValues(form));
  };

  pages.users = async () => {
    const view = listView(
      '#users',
      (u) => {
        const path = `/api/v1/users/${encodeURIComponent(u.name)}`;
        const act = (label, method, suffix, cls, ask) =>
          button(
            label,
            () =>
              attempt(label.toLowerCase(), async () => {
                if (ask && !(await ask())) return;
                await api(method, path + suffix);
                status(`${label.toLowerCase()}: ${u.name}`);
                await view.reload();
              }),
            cls,
          );
        const askDisable = async () => {
          const live = (await apiAll(withParams('/api/v1/sessions', { live: true, user: u.name }))).length;
          return confirmAction(
            `Disable ${u.name}?`,
            `${u.name} can no longer log in` + (live ? `, and ${plural(live, 'live session')} of ${u.name} end${live === 1 ? 's' : ''}.` : '; no live session ends.'),
            'Disable',
          );
        };
        const ROLE_MEANS = {
          admin: 'manages users, assets, accounts and grants',
          auditor: 'reads the audit trail and recordings and changes nothing',
          user: 'reaches the targets their grants allow',
        };
        const roleSelect = (u) => {
          const select = el(
            'select',
            { 'aria-label': `Role of ${u.name}` },
            Object.keys(ROLE_MEANS).map((r) => el('option', r === u.role ? { value: r, selected: 'selected' } : { value: r }, r)),
          );
          select.addEventListener('change', () =>
            attempt('change role', async () => {
              const to = select.value;
              const ok = await confirmAction(
                `Give ${u.name} the ${to} role?`,
                `As ${to}, ${u.name} ${ROLE_MEANS[to]}, from their next request.`,
                'Change role',
              );
              if (!ok) {
                select.value = u.role;
                return;
              }
              await api('PUT', `${path}/role`, { role: to });
              status(`${u.name} now has the ${to} role`);
              await view.reload();
            }),
          );
          return select;
        };
        const askReset = () =>
          confirmAction(`Reset the second factors of ${u.name}?`, `This removes ${u.name}'s TOTP authenticator and every passkey; ${u.name} must enrol again before a login that needs one.`, 'Reset MFA');
        const actions = isAdmin()
          ? [
              u.disabled ? act('Enable', 'POST', '/enable') : act('Disable', 'POST', '/disable', 'danger', askDisable),
              u.mfa_enrolled || u.passkeys ? act('Reset MFA', 'DELETE', '/mfa', 'danger', askReset) : null,
              act('Unlock', 'POST', '/unlock'),
            ]
          : [];
        const keys = (u.keys || []).map((k) => el('div', {}, el('code', { class: 'wrap' }, k.fingerprint || ''), ` ${k.comment || ''}`));
        return [
          u.name,
          isAdmin() ? roleSelect(u) : u.role,
          u.disabled ? 'disabled' : 'enabled',
          u.has_password ? 'set' : '—',
          [u.mfa_enrolled ? 'TOTP' : null, u.passkeys ? 'passkey' : null].filter(Boolean).join(', ') || '—',
          keys.length ? keys : '—',
          (u.groups || []).join(', '),
          el('span', { class: 'actions' }, actions),
        ];
      },
      'no user',
    );
    onSubmit('#user-key', (form) =>
      attempt('add key', async () => {
        const values = formValues(form);
        await api('POST', `/api/v1/users/${encodeURIComponent(values.user)}/keys`, { public_key: values.public_key });
        form.reset();
        status(`added a key for ${values.user}`);
        await view.reload();
      }),
    );
    onSubmit('#user-password', (form) =>
      attempt('set password', async () => {
        const user = formValues(form).user;
        const password = String(new FormData(form).get('password') || '');
        form.reset();
        await api('PUT', `/api/v1/users/${encodeURIComponent(user)}/password`, { password });
        status(`set the password of ${user}`);
      }),
    );
    onSubmit('#user-add', (form) =>
      attempt('add user', async () => {
        const values = formValues(form);
        await api('POST', '/api/v1/users', { name: values.name, role: values.role });
        form.reset();
        await view.reload();
      }),
    );
    await view.load('/api/v1/users');
  };

  pages.groups = async () => {
    const path = (g) => `/api/v1/groups/${encodeURIComponent(g.name)}`;
    const leave = (g, user) =>
      el(
        'button',
        {
          type: 'button',
          class: 'danger small',
          title: `Take ${user} out of ${g.name}`,
          'aria-label': `Take ${user} out of ${g.name}`,
          onclick: () =>
            attempt('remove member', async () => {
              const ok = await confirmAction(
                `Take ${user} out of ${g.name}?`,
                `Grants to ${g.name} no longer reach ${user}; live sessions they allowed end.`,
                'Remove',
              );
              if (!ok) return;
              await api('DELETE', `${path(g)}/members/${encodeURIComponent(user)}`);
              status(`removed ${user} from ${g.name}`);
              await view.reload();
            }),
        },
        '×',
      );
    const remove = (g) =>
      button(
        'Remove',
        () =>
          attempt('remove group', async () => {
            const grants = (await apiAll('/api/v1/grants')).filter((x) => x.subject && x.subject.group === g.name).length;
            const ok = await confirmAction(
              `Remove group ${g.name}?`,
              `Removes group ${g.name} and ${plural(grants, 'grant')} naming it; its ${plural((g.members || []).length, 'member')} stay users.`,
              'Remove',
            );
            if (!ok) return;
            await api('DELETE', path(g));
            status(`removed group ${g.name}`);
            await view.reload();
          }),
        'danger',
      );
    const view = listView(
      '#groups',
      (g) => [
        g.name,
        (g.members || []).length
          ? (g.members || []).map((user) => el('span', { class: 'member' }, user, isAdmin() ? leave(g, user) : null, ' '))
          : '—',
        isAdmin() ? el('span', { class: 'actions' }, remove(g)) : '',
      ],
      'no group',
    );
    onSubmit('#group-add', (form) =>
      attempt('add group', async () => {
        await api('POST', '/api/v1/groups', { name: formValues(form).name });
        form.reset();
        await view.reload();
      }),
    );
    onSubmit('#group-member', (form) =>
      attempt('add member', async () => {
        const values = formValues(form);
        await api('POST', `/api/v1/groups/${encodeURIComponent(values.group)}/members`, { user: values.user });
        form.reset();
        await view.reload();
      }),
    );
    await view.load('/api/v1/groups');
  };

  // What removing an asset takes with it, counted from the API's lists the way the store
  // removes them: its accounts, and the grants that name the asset (label grants stay).
  async function assetRemoval(asset) {
    const [accounts, grants] = await Promise.all([apiAll('/api/v1/accounts'), apiAll('/api/v1/grants')]);
    const ownAccounts = accounts.filter((a) => a.asset === asset).length;
    const ownGrants = grants.filter((g) => g.target && typeof g.target === 'object' && g.target.asset === asset).length;
    return `Removes asset ${asset}, ${plural(ownAccounts, 'account')} (with ${ownAccounts === 1 ? 'its' : 'their'} vaulted secrets) and ${plural(ownGrants, 'grant')}.`;
  }

  pages.assets = async () => {
    const view = listView(
      '#assets',
      (a) => [
        a.name,
        a.host,
        (a.endpoints || []).map((e) => `${e.protocol}:${e.port}`).join(', '),
        a.domain || '-',
        labelsText(a.labels),
        a.host_key ? el('code', { class: 'wrap' }, a.host_key) : 'not pinned (pinned on first use)',
        isAdmin()
          ? el('span', { class: 'actions' }, [
              button('Edit', () => editAsset(a)),
              a.host_key
                ? button('Forget host key', () =>
                    attempt('forget host key', async () => {
                      const ok = await confirmAction(
                        `Forget the host key of ${a.name}?`,
                        `The next connection to ${a.name} pins whatever key the target presents.`,
                        'Forget host key',
                      );
                      if (!ok) return;
                      await api('DELETE', `/api/v1/assets/${encodeURIComponent(a.name)}/host-key`);
                      await view.reload();
                    }),
                  )
                : null,
              button(
                'Remove',
                () =>
                  attempt('remove asset', async () => {
                    const ok = await confirmAction(`Remove asset ${a.name}?`, await assetRemoval(a.name), 'Remove');
                    if (!ok) return;
                    await api('DELETE', `/api/v1/assets/${encodeURIComponent(a.name)}`);
                    status(`removed asset ${a.name}`);
                    await view.reload();
                  }),
                'danger',
              ),
            ])
          : '',
      ],
      'no asset',
    );
    // Edit in place: the row's Edit fills this form with the asset's address and labels.
    const assetForm = $('#asset-edit');
    function editAsset(a) {
      const field = (name) => assetForm.elements.namedItem(name);
      field('name').value = a.name;
      field('host').value = a.host;
      field('labels').value = (a.labels || []).map(labelText).join(',');
      $('#asset-edit-title').textContent = `Change asset ${a.name}:`;
      assetForm.hidden = false;
      field('host').focus();
    }
    $('#asset-edit-cancel').addEventListener('click', () => {
      assetForm.hidden = true;
    });
    assetForm.addEventListener('submit', (event) => {
      event.preventDefault();
      attempt('change asset', async () => {
        const field = (name) => assetForm.elements.namedItem(name);
        await api('PUT', `/api/v1/assets/${encodeURIComponent(field('name').value)}`, {
          host: field('host').value.trim(),
          labels: csv(field('labels').value) || [],
        });
        assetForm.hidden = true;
        status(`changed asset ${field('name').value}`);
        await view.reload();
      });
    });
    onSubmit('#asset-host-key', (form) =>
      attempt('pin host key', async () => {
        const values = formValues(form);
        await api('PUT', `/api/v1/assets/${encodeURIComponent(values.asset)}/host-key`, { key: values.key });
        form.reset();
        await view.reload();
      }),
    );
    onSubmit('#asset-endpoint', (form) =>
      attempt('add endpoint', async () => {
        const values = formValues(form);
        await api('POST', `/api/v1/assets/${encodeURIComponent(values.asset)}/endpoints`, {
          protocol: values.protocol,
          port: values.port ? Number(values.port) : undefined,
        });
        form.reset();
        await view.reload();
      }),
    );
    onSubmit('#asset-add', (form) =>
      attempt('add asset', async () => {
        const values = formValues(form);
        await api('POST', '/api/v1/assets', {
          name: values.name,
          host: values.host,
          port: values.port ? Number(values.port) : undefined,
          labels: csv(values.labels),
        });
        form.reset();
        await view.reload();
      }),
    );
    await view.load('/api/v1/assets');
  };

  pages.domains = async () => {
    const domains = listView(
      '#domains',
      (d) => [
        d.name,
        (d.gateways || []).map((g) => g.name).join(', ') || '-',
        (d.assets || []).join(', ') || '-',
        isAdmin()
          ? button(
              'Remove',
              () =>
                attempt('remove domain', async () => {
                  const ok = await confirmAction(
                    `Remove network domain ${d.name}?`,
                    'Only an empty domain is removed: no assets, gateways or agents.',
                    'Remove',
                  );
                  if (!ok) return;
                  await api('DELETE', `/api/v1/domains/${encodeURIComponent(d.name)}`);
                  status(`removed network domain ${d.name}`);
                  await domains.reload();
                }),
              'danger',
            )
          : '',
      ],
      'no network domain',
    );
    const health = (g) => {
      if (!g.health) return 'not checked yet';
      if (g.health === 'failing') return `failing: ${g.last_error || ''}`;
      return g.health;
    };
    const gateways = listView(
      '#gateways',
      (g) => {
        const result = el('span', { class: 'test-result' });
        return [
          g.name,
          g.domain,
          String(g.priority),
          `${g.host}:${g.port}`,
          g.login,
          health(g),
          g.health_checked_at || '-',
          isAdmin()
            ? el('span', { class: 'actions' }, [
                button('Test', () =>
                  attempt('test gateway', async () => {
                    result.textContent = 'testing...';
                    const report = await api('POST', `/api/v1/gateways/${encodeURIComponent(g.name)}/test`, {});
                    const steps = (report.steps || []).map((s) => `${s.step}: ${s.result}`).join(' / ');
                    result.textContent = report.ok ? `${steps} / gateway ${g.name} works` : `${steps} / ${report.error}`;
                  }),
                ),
                result,
              ])
            : '',
        ];
      },
      'no gateway',
    );
    onSubmit('#domain-add', (form) =>
      attempt('add domain', async () => {
        const values = formValues(form);
        await api('POST', '/api/v1/domains', { name: values.name });
        status(`added network domain ${values.name}`);
        form.reset();
        await domains.reload();
      }),
    );
    await domains.load('/api/v1/domains');
    await gateways.load('/api/v1/gateways');
  };

  pages.accounts = async () => {
    const view = listView(
      '#accounts',
      (a) => {
        const name = a.account || `${a.login}@${a.asset}`;
        return [
          name,
          a.secret_kind === 'private_key' ? 'private key (in the vault)' : 'password (in the vault)',
          time(a.created_at),
          isAdmin()
            ? button(
                'Remove',
                () =>
                  attempt('remove account', async () => {
                    const ok = await confirmAction(
                      `Remove account ${name}?`,
                      `Removes ${name} and its vaulted secret; nobody can reach ${name} through Rampart until it is added again.`,
                      'Remove',
                    );
                    if (!ok) return;
                    await api('DELETE', `/api/v1/accounts/${encodeURIComponent(name)}`);
                    await view.reload();
                  }),
                'danger',
              )
            : '',
          button('Rotation', () => attempt('rotation', () => showRotation(name)), 'secondary'),
        ];
      },
      'no account',
    );
    // One account's rotation: its settings, its history (never a secret: the API has none to
    // give) and, for administrators, Rotate now (asked first).
    let rotationAccount = null;
    const rotationOutcome = {
      committed: 'rotated: the new secret works and replaced the old one',
      failed: 'not rotated: the old secret was kept and still works',
      unknown: 'unknown: neither secret logged in; both are kept',
      pending: 'in flight: nothing changed on the target yet',
      applied: 'in flight: changed on the target, not yet proven',
    };
    const byWhom = (who) => {
      if (!who) return '';
      if (who === 'system') return 'Rampart (schedule or end of session)';
      return who.replace(/^user:/, '').replace(/^cli:/, 'command line as ');
    };
    const interval = (seconds) => {
      for (const [unit, size] of [['day', 86400], ['hour', 3600], ['minute', 60]]) {
        if (seconds >= size && seconds % size === 0) return plural(seconds / size, unit);
      }
      return plural(seconds, 'second');
    };
    async function showRotation(name) {
      rotationAccount = name;
      const data = await api('GET', `/api/v1/accounts/${encodeURIComponent(name)}/rotations`);
      const settings = data.settings || {};
      $('#rotation').hidden = false;
      $('#rotation-title').textContent = `Rotation of ${name}`;
      $('#rotation-settings').textContent = words([
        settings.every_seconds ? `rotates every ${interval(settings.every_seconds)}` : 'no schedule of its own',
        settings.rotate_after_sessions_since ? 'after every session' : '',
        settings.via_login ? `changed through ${settings.via_login}` : 'changed by the account itself',
        settings.last_rotated_at ? `last rotated ${time(settings.last_rotated_at)}` : 'never rotated yet',
        settings.status === 'unknown' ? 'STATUS UNKNOWN: neither secret logged in at the last rotation' : '',
      ]);
      fill(
        '#rotations',
        data.rotations || [],
        (r) => [time(r.started_at), rotationOutcome[r.state] || r.state, r.reason || '', byWhom(r.started_by), time(r.updated_at)],
        'no rotation yet',
      );
    }
    const rotateNow = $('#rotate-now');
    if (rotateNow) {
      rotateNow.addEventListener('click', () =>
        attempt('rotate', async () => {
          const name = rotationAccount;
          if (!name) return;
          const ok = await confirmAction(
            `Rotate the secret of ${name} now?`,
            `Rampart sets a new secret on the target, proves it with a fresh login and only then replaces the vaulted one; if anything fails the old secret is kept. Anyone using the old secret outside Rampart loses access.`,
            'Rotate now',
          );
          if (!ok) return;
          status(`rotating ${name}...`);
          try {
            await api('POST', `/api/v1/accounts/${encodeURIComponent(name)}/rotations`);
            status(`rotated ${name}: the new secret works`);
          } catch (err) {
            const why = String(err.message || err);
            status(`rotate ${name}: ${why === 'HTTP 409' ? 'did not commit, the old secret was kept (the history says why)' : why}`, true);
          } finally {
            await showRotation(name);
          }
        }),
      );
    }
    const wanted = new URLSearchParams(location.search).get('account');
    if (wanted) await attempt('rotation', () => showRotation(wanted));
    onSubmit('#account-secret', (form, submitter) =>
      attempt('account', async () => {
        const data = new FormData(form);
        const account = String(data.get('account') || '').trim();
        const secret = {};
        const password = String(data.get('password') || '');
        const key = String(data.get('private_key') || '');
        if (password) secret.password = password;
        if (key.trim()) secret.private_key = key;
        // The secret leaves the page now: the form forgets it whatever the answer.
        form.reset();
        if (submitter && submitter.value === 'replace') {
          await api('PUT', `/api/v1/accounts/${encodeURIComponent(account)}/secret`, secret);
          status(`replaced the secret of ${account}`);
        } else {
          await api('POST', '/api/v1/accounts', { account, ...secret });
          status(`added ${account}`);
        }
        await view.reload();
      }),
    );
    await view.load('/api/v1/accounts');
  };

  function describeTarget(target) {
    if (typeof target === 'string') return targetText(target);
    if (target && target.asset) return `asset ${target.asset}`;
    if (target && target.labels) return `assets labelled ${[].concat(target.labels).map(labelText).join(', ')}`;
    return '?';
  }

  function describeSubject(subject) {
    if (typeof subject === 'string') return subjectText(subject);
    if (subject && subject.user) return `user ${subject.user}`;
    if (subject && subject.group) return `group ${subject.group}`;
    return '?';
  }

  const actionsText = (actions) => (Array.isArray(actions) ? actions.join(', ') : String(actions ?? ''));

  pages.grants = async () => {
    const view = listView(
      '#grants',
      (g) => [
        describeSubject(g.subject),
        describeTarget(g.target),
        (g.accounts || []).length ? g.accounts.join(', ') : 'all',
        actionsText(g.actions),
        [g.valid_from ? `from ${time(g.valid_from)}` : '', g.valid_until ? `until ${time(g.valid_until)}` : ''].filter(Boolean).join(' ') || 'always',
        [g.require_mfa ? 'MFA' : '', g.schedule ? `schedule ${g.schedule}` : '', g.idle_timeout ? `idle ${g.idle_timeout}` : '', g.max_duration ? `max ${g.max_duration}` : '']
          .filter(Boolean)
          .join(', '),
        isAdmin()
          ? el('span', { class: 'actions' }, button('Edit', () => editGrant(g)), button(
              'Remove',
              () =>
                attempt('remove grant', async () => {
                  const ok = await confirmAction(
                    `Remove this grant of ${describeSubject(g.subject)}?`,
                    `${describeSubject(g.subject)} loses ${actionsText(g.actions)} on ${describeTarget(g.target)} ` +
                      `(${(g.accounts || []).length ? g.accounts.join(', ') : 'every account'}) unless another grant gives it; live sessions it allowed end.`,
                    'Remove',
                  );
                  if (!ok) return;
                  await api('DELETE', `/api/v1/grants/${g.id}`);
                  await view.reload();
                }),
              'danger',
            ))
          : '',
      ],
      'no grant',
    );
    // Edit in place: the row's Edit fills this form with the grant's conditions; an emptied
    // field unsets that condition.
    const editForm = $('#grant-edit');
    const actionWord = (a) => String(a).replace(/_connect$/, ':connect');
    function editGrant(g) {
      const field = (name) => editForm.elements.namedItem(name);
      field('id').value = g.id;
      field('actions').value = (Array.isArray(g.actions) ? g.actions : [g.actions]).map(actionWord).join(',');
      field('until').value = g.valid_until || '';
      field('schedule').value = g.schedule || '';
      field('idle_timeout').value = g.idle_timeout || '';
      field('max_duration').value = g.max_duration || '';
      field('require_mfa').checked = Boolean(g.require_mfa);
      field('recording').checked = g.record !== false;
      $('#grant-edit-title').textContent = `Change the grant of ${describeSubject(g.subject)} on ${describeTarget(g.target)}:`;
      editForm.hidden = false;
      field('actions').focus();
    }
    $('#grant-edit-cancel').addEventListener('click', () => {
      editForm.hidden = true;
    });
    editForm.addEventListener('submit', (event) => {
      event.preventDefault();
      attempt('change grant', async () => {
        const field = (name) => editForm.elements.namedItem(name);
        await api('PATCH', `/api/v1/grants/${encodeURIComponent(field('id').value)}`, {
          actions: field('actions').value.trim() || undefined,
          until: field('until').value.trim(),
          schedule: field('schedule').value.trim(),
          idle_timeout: field('idle_timeout').value.trim(),
          max_duration: field('max_duration').value.trim(),
          require_mfa: field('require_mfa').checked,
          recording: field('recording').checked,
        });
        editForm.hidden = true;
        status('grant changed');
        await view.reload();
      });
    });
    onSubmit('#grant-add', (form) =>
      attempt('add grant', async () => {
        const values = formValues(form);
        await api('POST', '/api/v1/grants', {
          user: values.user,
          group: values.group,
          asset: values.asset,
          labels: csv(values.labels),
          accounts: csv(values.accounts),
          actions: values.actions,
          until: values.until,
          require_mfa: values.require_mfa === 'true' ? true : undefined,
        });
        form.reset();
        status('grant added');
        await view.reload();
      }),
    );
    onSubmit('#grant-explain', (form) =>
      attempt('explain', async () => {
        const answers = await api('GET', `/api/v1/grants/explain${query(formValues(form))}`);
        fill('#explanation', answers, (a) => [
          a.account,
          el('strong', { class: a.decision === 'allow' ? 'ok' : 'error' }, a.decision),
          a.reason || (a.rules ? `session rules: ${a.rules.summary}` : ''),
          el('ul', {}, (a.grants || []).map((g) => el('li', {}, `${g.who} → ${g.target}: ${g.verdict}`))),
        ]);
      }),
    );
    await view.load('/api/v1/grants');
  };

  // The recorded settings by the names they have in the configuration file. Old
  // `server_started` events keep the names they were written with, so the mapping lives here.
  const SETTING_NAMES = {
    ssh_listen: 'ssh.listen',
    ssh_target_host_keys: 'ssh.target_host_keys',
    http_listen: 'http.listen',
    http_tls: 'http.tls',
    http_session_idle_timeout: 'http.session_idle_timeout',
    http_session_lifetime: 'http.session_lifetime',
    master_key: 'vault.master_key_file',
    retention_days: 'audit.retention_days',
    audit_seal_interval_secs: 'audit.seal_interval',
    syslog: 'audit.syslog',
    webhook: 'audit.webhook',
    session_idle_timeout: 'session.idle_timeout',
    session_max_duration: 'session.max_duration',
    recording_fsync_interval: 'recording.fsync_interval',
    recording_exec_cap: 'recording.exec_cap',
  };

  pages.settings = async () => {
    const events = await api('GET', '/api/v1/audit/events?kind=server_started&limit=1');
    const started = events[events.length - 1];
    if (!started) {
      status('no server_started event found');
      return;
    }
    $('#started').textContent = `Started ${time(started.at)}, version ${started.event.version}.`;
    const settings = { ...(started.event.settings || {}) };
    if (typeof settings.audit_seal_interval_secs === 'number') settings.audit_seal_interval_secs = `${settings.audit_seal_interval_secs}s`;
    const rows = flatten('', settings, []).map(([key, value]) => [SETTING_NAMES[key] || key, value]);
    rows.sort((a, b) => a[0].localeCompare(b[0]));
    fill('#settings', rows, (row) => [el('code', {}, row[0]), row[1]]);
  };

  document.addEventListener('DOMContentLoaded', async () => {
    const name = document.body.dataset.page;
    try {
      if (name !== 'login' && name !== 'invite') await whoAmI();
      if (pages[name]) await pages[name]();
      document.body.dataset.ready = 'true';
    } catch (err) {
      status(err.message, true);
    }
  });
})();
