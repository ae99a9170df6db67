// A small OpenID Connect provider for the tests: npm `oidc-provider` (web/package-lock.json) on a
// loopback port, with the test users below and a real login form (user name + password).
//
//   node tests/idp/provider.mjs --port P --client-id ID --client-secret-file PATH \
//        --redirect-uri URI [--post-logout-uri URI]
//
// Prints "READY <issuer>" on stdout once it listens. Stopped by its PID (SIGTERM).
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';
import { createRequire } from 'node:module';

const require = createRequire(new URL('../../web/package.json', import.meta.url));
const { default: Provider } = await import(require.resolve('oidc-provider'));

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    'client-id': { type: 'string', default: 'twinclass' },
    'client-secret-file': { type: 'string' },
    'redirect-uri': { type: 'string', multiple: true, default: [] },
    'post-logout-uri': { type: 'string', multiple: true, default: [] },
  },
});

// user name -> password and claims (roles/groups, school, classroom)
export const USERS = {
  bureau: { password: 'bureau-pw', claims: { name: '王局长 Bureau admin', roles: ['bureau-admin'] } },
  schooladmin: { password: 'school-pw', claims: { name: '李校长 School admin', roles: ['school-admin'], school: '实验小学' } },
  teacher: { password: 'teacher-pw', claims: { name: '张老师 Teacher', roles: ['teacher'], classroom: 'master-a' } },
  observer: { password: 'observer-pw', claims: { name: '赵教研员 Researcher', groups: ['researcher'] } },
  nobody: { password: 'nobody-pw', claims: { name: '路人 No role', roles: ['student'] } },
};

const port = Number(args.port);
const issuer = `http://127.0.0.1:${port}`;
const clientSecret = fs.readFileSync(args['client-secret-file'], 'utf8').trim();
const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: crypto.randomUUID(), use: 'sig', alg: 'RS256' };

const provider = new Provider(issuer, {
  clients: [{
    client_id: args['client-id'],
    client_secret: clientSecret,
    redirect_uris: args['redirect-uri'],
    post_logout_redirect_uris: args['post-logout-uri'],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [jwk] },
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  claims: { openid: ['sub'], profile: ['name', 'roles', 'groups', 'school', 'classroom'] },
  conformIdTokenClaims: false, // the ID token carries the profile claims (no userinfo call needed)
  pkce: { required: () => true },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, id) {
    if (!USERS[id]) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...USERS[id].claims }; } };
  },
  // first-party client: consent is implied (openid profile)
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid profile');
    await grant.save();
    return grant;
  },
});

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function loginForm(res, uid, error = '') {
  res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
  res.end(`<!doctype html><html><head><meta charset="utf-8"><title>省教育平台 统一身份认证</title></head><body>
<h1>统一身份认证 Province login</h1>${error ? `<p id="error">${esc(error)}</p>` : ''}
<form method="post" action="/interaction/${esc(uid)}/login">
<label>用户名 User <input name="username" id="username" autocomplete="username"></label>
<label>密码 Password <input name="password" id="password" type="password"></label>
<button type="submit" id="submit">登录 Log in</button></form></body></html>`);
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 10000) throw new Error('body too large');
  }
  return new URLSearchParams(body);
}

const callback = provider.callback();
const server = http.createServer(async (req, res) => {
  const m = req.url.match(/^\/interaction\/([\w-]+)(\/login)?$/);
  if (!m) return callback(req, res);
  try {
    const details = await provider.interactionDetails(req, res);
    if (details.uid !== m[1]) throw new Error('interaction mismatch');
    if (req.method === 'GET') return loginForm(res, details.uid);
    if (req.method === 'POST' && m[2]) {
      const form = await readForm(req);
      const user = USERS[form.get('username')];
      if (!user || user.password !== form.get('password')) {
        return loginForm(res, details.uid, '用户名或密码错误 Wrong user name or password');
      }
      return await provider.interactionFinished(req, res, { login: { accountId: form.get('username') } },
        { mergeWithLastSubmission: false });
    }
    res.writeHead(405).end();
  } catch (err) {
    res.writeHead(400, { 'Content-Type': 'text/plain' }).end(`interaction failed: ${err.message}`);
  }
});
server.listen(port, '127.0.0.1', () => console.log(`READY ${issuer}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
