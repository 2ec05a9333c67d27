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

  async function api(method, path, body) {
    const headers = {};
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (method !== 'GET' && me && me.csrf_token) headers['X-CSRF-Token'] = me.csrf_token;
    const response = await fetch(path, {
      method,
      headers,
      credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401 && path !== '/api/v1/login') {
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
    return data;
  }

  // Runs an action, reporting its failure on the status line.
  async function attempt(what, action) {
    try {
      status('');
      await action();
    } catch (err) {
      status(`${what}: ${err.message}`, true);
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

  function fill(selector, rows, render, empty) {
    const body = $(`${selector} tbody`);
    body.replaceChildren();
    if (!rows || rows.length === 0) {
      const columns = $(`${selector} thead tr`).children.length;
      body.append(el('tr', {}, el('td', { colspan: columns, class: 'empty' }, empty || 'nothing')));
      return;
    }
    for (const row of rows) body.append(el('tr', {}, render(row).map((cell) => el('td', {}, cell))));
  }

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

  pages.login = async () => {
    onSubmit('#login-form', (form) =>
      attempt('login failed', async () => {
        const values = formValues(form);
        await api('POST', '/api/v1/login', {
          username: values.username || '',
          password: new FormData(form).get('password') || '',
          totp: values.totp,
        });
        location.href = sameSitePath(new URLSearchParams(location.search).get('next'));
      }),
    );
  };

  pages.home = async () => {
    const accounts = await api('GET', '/api/v1/me/accounts');
    fill(
      '#accounts',
      accounts,
      (a) => [
        a.account,
        a.asset,
        a.port ? `${a.host}:${a.port}` : a.host,
        (a.labels || []).join(', '),
        el('a', { class: 'button', href: `/terminal?account=${encodeURIComponent(a.account)}` }, 'Connect'),
      ],
      'no account is open to you right now',
    );
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
      if (typeof event.data !== 'string') term.write(new Uint8Array(event.data));
    };
    socket.onclose = () => {
      state.textContent = 'not watching: the session ended, or is not live on this node';
    };
  };

  async function loadSessions(filter) {
    const sessions = await api('GET', `/api/v1/sessions${query(filter)}`);
    fill('#sessions', sessions, (s) => {
      const actions = [];
      if (!s.ended_at && isAuditor()) {
        actions.push(el('a', { class: 'button', href: `/watch?session=${s.id}` }, 'Watch'));
        const reason = el('input', { placeholder: 'reason', 'aria-label': 'kill reason', size: 14 });
        actions.push(reason);
        actions.push(
          button(
            'Kill',
            () =>
              attempt('kill', async () => {
                const body = reason.value.trim() ? { reason: reason.value.trim() } : {};
                await api('POST', `/api/v1/sessions/${s.id}/kill`, body);
                status(`session ${s.id} is being ended`);
                await loadSessions(filter);
              }),
            'danger',
          ),
        );
      }
      if (s.ended_at && s.recorded) {
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
      const outcome = [s.exit_status === null ? '' : `exit ${s.exit_status}`, s.end_reason || '']
        .filter(Boolean)
        .join(', ');
      const account = String(s.account).includes('@') ? s.account : `${s.account}@${s.asset}`;
      return [time(s.started_at), s.user, account, s.kind, s.source_addr, ended, outcome, el('span', { class: 'actions' }, actions)];
    });
  }

  pages.sessions = async () => {
    let filter = {};
    onSubmit('#session-filter', (form) => {
      filter = formValues(form);
      attempt('sessions', () => loadSessions(filter));
    });
    await loadSessions(filter);
  };

  pages.replay = async () => {
    const id = new URLSearchParams(location.search).get('session') || '';
    const session = await api('GET', `/api/v1/sessions/${encodeURIComponent(id)}`);
    $('#session-summary').textContent =
      `${session.user} on ${session.account}@${session.asset} (${session.kind}) from ${session.source_addr}, ` +
      `${time(session.started_at)} to ${time(session.ended_at) || 'now'}`;
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
    const container = $('#player');
    const speeds = el('select', { id: 'speed', 'aria-label': 'speed' }, ['0.5', '1', '2', '4'].map((s) => el('option', { value: s }, `${s}×`)));
    speeds.value = '1';
    let player = null;
    const create = () => {
      if (player) player.dispose();
      container.replaceChildren();
      player = window.AsciinemaPlayer.create(`/api/v1/sessions/${encodeURIComponent(id)}/recording`, container, {
        speed: Number(speeds.value),
        fit: 'width',
        idleTimeLimit: 2,
        preload: true,
      });
      window.rampartPlayer = player;
    };
    speeds.addEventListener('change', create);
    container.before(el('p', {}, el('label', {}, 'Speed ', speeds), ' · space: play/pause, ←/→: seek'));
    create();
  };

  async function loadCommands(filter) {
    const commands = await api('GET', `/api/v1/commands${query(filter)}`);
    fill('#commands', commands, (c) => [
      time(c.at || c.started_at || ''),
      c.user,
      c.asset ? `${c.account}@${c.asset}` : c.account || '',
      el('code', {}, c.command),
      c.session ? el('a', { href: `/replay?session=${c.session}` }, 'session') : '',
    ]);
  }

  pages.commands = async () => {
    onSubmit('#command-filter', (form) => attempt('commands', () => loadCommands(formValues(form))));
    await loadCommands({});
  };

  async function loadEvents(filter) {
    const events = await api('GET', `/api/v1/audit/events${query(filter)}`);
    events.reverse();
    fill('#events', events, (e) => [
      e.seq ?? e.id ?? '',
      time(e.at),
      typeof e.actor === 'string' ? e.actor : JSON.stringify(e.actor),
      e.kind,
      el('code', {}, JSON.stringify(e.event)),
    ]);
  }

  pages.audit = async () => {
    onSubmit('#audit-filter', (form) => {
      const values = formValues(form);
      for (const format of ['csv', 'jsonl']) {
        const params = { format };
        if (values.since) params.since = values.since;
        $(`#export-${format}`).href = `/api/v1/audit/export${query(params)}`;
      }
      attempt('audit', () => loadEvents(values));
    });
    await loadEvents({ limit: 200 });
  };

  async function loadUsers() {
    const users = await api('GET', '/api/v1/users');
    fill('#users', users, (u) => {
      const path = `/api/v1/users/${encodeURIComponent(u.name)}`;
      const act = (label, method, suffix, cls) =>
        button(label, () => attempt(label.toLowerCase(), async () => {
          await api(method, path + suffix);
          status(`${label.toLowerCase()}: ${u.name}`);
          await loadUsers();
        }), cls);
      const actions = isAdmin()
        ? [
            u.disabled ? act('Enable', 'POST', '/enable') : act('Disable', 'POST', '/disable', 'danger'),
            u.mfa_enrolled ? act('Reset MFA', 'DELETE', '/mfa', 'danger') : null,
            act('Unlock', 'POST', '/unlock'),
          ]
        : [];
      const keys = (u.keys || []).map((k) => el('div', {}, el('code', {}, k.fingerprint || ''), ` ${k.comment || ''}`));
      return [
        u.name,
        u.role,
        u.disabled ? 'disabled' : 'enabled',
        u.has_password ? 'set' : '—',
        u.mfa_enrolled ? 'TOTP' : '—',
        keys.length ? keys : '—',
        (u.groups || []).join(', '),
        el('span', { class: 'actions' }, actions),
      ];
    });
  }

  pages.users = async () => {
    onSubmit('#user-key', (form) =>
      attempt('add key', async () => {
        const values = formValues(form);
        await api('POST', `/api/v1/users/${encodeURIComponent(values.user)}/keys`, { public_key: values.public_key });
        form.reset();
        status(`added a key for ${values.user}`);
        await loadUsers();
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
        await loadUsers();
      }),
    );
    await loadUsers();
  };

  async function loadGroups() {
    const groups = await api('GET', '/api/v1/groups');
    fill('#groups', groups, (g) => [g.name, (g.members || []).join(', ')]);
  }

  pages.groups = async () => {
    onSubmit('#group-add', (form) =>
      attempt('add group', async () => {
        await api('POST', '/api/v1/groups', { name: formValues(form).name });
        form.reset();
        await loadGroups();
      }),
    );
    onSubmit('#group-member', (form) =>
      attempt('add member', async () => {
        const values = formValues(form);
        await api('POST', `/api/v1/groups/${encodeURIComponent(values.group)}/members`, { user: values.user });
        form.reset();
        await loadGroups();
      }),
    );
    await loadGroups();
  };

  async function loadAssets() {
    const assets = await api('GET', '/api/v1/assets');
    fill('#assets', assets, (a) => [
      a.name,
      a.host,
      (a.endpoints || []).map((e) => `${e.protocol}:${e.port}`).join(', '),
      a.domain || '-',
      (a.labels || []).join(', '),
      a.host_key ? el('code', { class: 'wrap' }, a.host_key) : 'not pinned (pinned on first use)',
      isAdmin()
        ? el('span', { class: 'actions' }, [
            a.host_key
              ? button('Forget host key', () => attempt('forget host key', async () => {
                  await api('DELETE', `/api/v1/assets/${encodeURIComponent(a.name)}/host-key`);
                  await loadAssets();
                }))
              : null,
            button('Remove', () => attempt('remove asset', async () => {
              await api('DELETE', `/api/v1/assets/${encodeURIComponent(a.name)}`);
              await loadAssets();
            }), 'danger'),
          ])
        : '',
    ]);
  }

  pages.assets = async () => {
    onSubmit('#asset-host-key', (form) =>
      attempt('pin host key', async () => {
        const values = formValues(form);
        await api('PUT', `/api/v1/assets/${encodeURIComponent(values.asset)}/host-key`, { key: values.key });
        form.reset();
        await loadAssets();
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
        await loadAssets();
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
        await loadAssets();
      }),
    );
    await loadAssets();
  };

  async function loadAccounts() {
    const accounts = await api('GET', '/api/v1/accounts');
    fill('#accounts', accounts, (a) => {
      const name = a.account || `${a.login}@${a.asset}`;
      return [
        name,
        a.secret_kind === 'private_key' ? 'private key (in the vault)' : 'password (in the vault)',
        time(a.created_at),
        isAdmin()
          ? button('Remove', () => attempt('remove account', async () => {
              await api('DELETE', `/api/v1/accounts/${encodeURIComponent(name)}`);
              await loadAccounts();
            }), 'danger')
          : '',
      ];
    });
  }

  pages.accounts = async () => {
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
        await loadAccounts();
      }),
    );
    await loadAccounts();
  };

  function describeTarget(target) {
    if (typeof target === 'string') return target;
    if (target && target.asset) return `asset ${target.asset}`;
    if (target && target.labels) return `labels ${[].concat(target.labels).join(', ')}`;
    return JSON.stringify(target);
  }

  function describeSubject(subject) {
    if (typeof subject === 'string') return subject;
    if (subject.user) return `user ${subject.user}`;
    if (subject.group) return `group ${subject.group}`;
    return JSON.stringify(subject);
  }

  async function loadGrants() {
    const grants = await api('GET', '/api/v1/grants');
    fill('#grants', grants, (g) => [
      describeSubject(g.subject),
      describeTarget(g.target),
      (g.accounts || []).length ? g.accounts.join(', ') : 'all',
      Array.isArray(g.actions) ? g.actions.join(', ') : String(g.actions),
      [g.valid_from ? `from ${time(g.valid_from)}` : '', g.valid_until ? `until ${time(g.valid_until)}` : ''].filter(Boolean).join(' ') || 'always',
      [g.require_mfa ? 'MFA' : '', g.schedule ? 'schedule' : '', g.idle_timeout ? `idle ${g.idle_timeout}` : '', g.max_duration ? `max ${g.max_duration}` : '']
        .filter(Boolean)
        .join(', '),
      isAdmin()
        ? button('Remove', () => attempt('remove grant', async () => {
            await api('DELETE', `/api/v1/grants/${g.id}`);
            await loadGrants();
          }), 'danger')
        : '',
    ]);
  }

  pages.grants = async () => {
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
        await loadGrants();
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
    await loadGrants();
  };

  pages.settings = async () => {
    const events = await api('GET', '/api/v1/audit/events?kind=server_started&limit=1');
    const started = events[events.length - 1];
    if (!started) {
      status('no server_started event found');
      return;
    }
    $('#started').textContent = `Started ${time(started.at)}, version ${started.event.version}.`;
    const rows = [];
    const flatten = (prefix, value) => {
      if (value && typeof value === 'object' && !Array.isArray(value)) {
        for (const [key, inner] of Object.entries(value)) flatten(prefix ? `${prefix}.${key}` : key, inner);
      } else {
        rows.push([prefix, value === null || value === undefined ? '—' : Array.isArray(value) ? value.join(', ') || '—' : String(value) || '—']);
      }
    };
    flatten('', started.event.settings || {});
    fill('#settings', rows, (row) => [el('code', {}, row[0]), row[1]]);
  };

  document.addEventListener('DOMContentLoaded', async () => {
    const name = document.body.dataset.page;
    try {
      if (name !== 'login') await whoAmI();
      if (pages[name]) await pages[name]();
      document.body.dataset.ready = 'true';
    } catch (err) {
      status(err.message, true);
    }
  });
})();
