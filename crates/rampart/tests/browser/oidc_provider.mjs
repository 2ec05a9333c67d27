// A real OpenID provider for Rampart's single sign-on tests (issue 20): panva's certified
// `oidc-provider` on 127.0.0.1 over HTTPS, with one static confidential client, users with a
// groups claim, and a test-only control API. Run by crates/rampart/tests/it/oidc.rs.
//
//   CERT / KEY        the HTTPS certificate (issued for 127.0.0.1) and its key
//   CLIENT_ID / CLIENT_SECRET / REDIRECT_URI   the static client (Rampart)
//
// Prints `issuer: https://127.0.0.1:PORT` once listening. Control API (loopback only, the
// test's side channel, not part of OpenID Connect):
//   POST /test/users/NAME        {"groups": [...], "disabled": bool}  create or change a user
//   POST /test/next-id-token     {"mode": M}  change the next ID token the token endpoint gives:
//        tamper       payload changed after signing (signature no longer matches)
//        wrong-aud    re-signed with the provider's key, audience another client
//        expired      re-signed with the provider's key, expired an hour ago
//        replay-nonce re-signed with the provider's key, the nonce of the previous sign-in
//        foreign-key  signed by a key the provider never published
//        rotate       from now on: a new key published and the ID token signed with it
import Provider from 'oidc-provider';
import { SignJWT, exportJWK, generateKeyPair, decodeJwt, importJWK } from 'jose';
import { readFileSync } from 'node:fs';
import https from 'node:https';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

async function key(kid) {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = await exportJWK(privateKey);
  return { ...jwk, kid, alg: 'RS256', use: 'sig' };
}
const publicPart = ({ kty, n, e, kid, alg, use }) => ({ kty, n, e, kid, alg, use });

const first = await key('key-1');
const rotated = await key('key-2');
const foreign = await key('key-1-foreign');
let rotatedPublished = false;
let nextMode = 'none';
let lastNonce = null;

const users = new Map();

const server = https.createServer({ cert: readFileSync(env('CERT')), key: readFileSync(env('KEY')) });
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `https://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: env('CLIENT_ID'),
      client_secret: env('CLIENT_SECRET'),
      redirect_uris: [env('REDIRECT_URI')],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  jwks: { keys: [first] },
  cookies: { keys: ['rampart-oidc-test-cookie-key'] },
  pkce: { required: () => true },
  claims: {
    openid: ['sub'],
    profile: ['preferred_username', 'name'],
    email: ['email'],
    groups: ['groups'],
  },
  // The claims of the scopes go into the ID token itself (Rampart reads them there).
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: true } },
  // A refresh token for every sign-in of this client (Rampart's periodic check uses it), and a
  // new one at each use.
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: () => true,
  // No consent screen: every scope asked for is granted.
  loadExistingGrant: async (ctx) => {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) {
      const found = await ctx.oidc.provider.Grant.find(grantId);
      if (found) return found;
    }
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid profile email groups offline_access');
    await grant.save();
    return grant;
  },
  // A disabled or unknown user has no account: the refresh grant then fails (invalid_grant).
  findAccount: async (_ctx, id) => {
    const user = users.get(id);
    if (!user || user.disabled) return undefined;
    return {
      accountId: id,
      claims: async () => ({ sub: id, preferred_username: id, name: id, email: `${id}@example.test`, groups: user.groups }),
    };
  },
  ttl: { IdToken: 600, AccessToken: 600, RefreshToken: 86400, Session: 3600, Interaction: 600, Grant: 86400 },
});
provider.proxy = false;

async function resign(claims, jwk) {
  const signing = await importJWK(jwk, 'RS256');
  return new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: jwk.kid, typ: 'JWT' }).sign(signing);
}

async function readJson(ctx) {
  let text = '';
  for await (const chunk of ctx.req) text += chunk;
  return text ? JSON.parse(text) : {};
}

provider.use(async (ctx, next) => {
  const control = ctx.path.match(/^\/test\/users\/([a-z0-9-]+)$/);
  if (control && ctx.method === 'POST') {
    const body = await readJson(ctx);
    const user = users.get(control[1]) || { groups: [], disabled: false };
    if (body.groups) user.groups = body.groups;
    if (body.disabled !== undefined) user.disabled = body.disabled;
    users.set(control[1], user);
    ctx.body = { user: control[1], ...user };
    return;
  }
  if (ctx.path === '/test/next-id-token' && ctx.method === 'POST') {
    const { mode } = await readJson(ctx);
    if (mode === 'rotate') rotatedPublished = true;
    else nextMode = mode;
    ctx.body = { mode };
    return;
  }
  await next();
  if (ctx.path === '/jwks' && rotatedPublished && ctx.body && Array.isArray(ctx.body.keys)) {
    ctx.body = { keys: [...ctx.body.keys, publicPart(rotated)] };
  }
  // Only the ID tokens of sign-ins (code grants): Rampart's periodic refresh grants pass as
  // they are.
  const grant = ctx.oidc?.params?.grant_type;
  if (ctx.path === '/token' && grant === 'authorization_code' && ctx.body && typeof ctx.body.id_token === 'string') {
    const claims = decodeJwt(ctx.body.id_token);
    const mode = nextMode;
    nextMode = 'none';
    const now = Math.floor(Date.now() / 1000);
    if (mode === 'tamper') {
      const [header, , signature] = ctx.body.id_token.split('.');
      const forged = Buffer.from(JSON.stringify({ ...claims, groups: ['idp-admins'] })).toString('base64url');
      ctx.body = { ...ctx.body, id_token: `${header}.${forged}.${signature}` };
    } else if (mode === 'wrong-aud') {
      ctx.body = { ...ctx.body, id_token: await resign({ ...claims, aud: 'another-client', azp: undefined }, first) };
    } else if (mode === 'expired') {
      ctx.body = { ...ctx.body, id_token: await resign({ ...claims, iat: now - 7200, exp: now - 3600 }, first) };
    } else if (mode === 'replay-nonce') {
      ctx.body = { ...ctx.body, id_token: await resign({ ...claims, nonce: lastNonce }, first) };
    } else if (mode === 'foreign-key') {
      ctx.body = { ...ctx.body, id_token: await resign(claims, foreign) };
    } else if (rotatedPublished) {
      ctx.body = { ...ctx.body, id_token: await resign(claims, rotated) };
    }
    if (claims.nonce) lastNonce = claims.nonce;
    console.log(`token: id token given (${mode}, ${rotatedPublished ? 'key-2' : 'key-1'})`);
  }
});

server.on('request', provider.callback());
console.log(`issuer: ${issuer}`);
