// A real OpenID provider for the sign-in tests: the certified oidc-provider package, configured from files the test
// fixture (tests/support/oidc.py) writes in the folder given as the first argument:
//   provider.json  issuer, port, clients, the API's audience and its tokens' lifetimes (read once, at start)
//   jwks.json      the private signing keys, newest first (read once: a key rotation restarts this process)
//   users.json     {"name": {"password": ..., "email": ..., "groups": [...]}} (read at every sign-in and token, so
//                  a test can take a user out of a group between two sign-ins)
// The login page is our own small form (consent given at once: the test clients are first-party); access tokens for the
// API are JWTs signed with the same keys, carrying the user's name and groups.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import Provider from 'oidc-provider';

const folder = process.argv[2];
const read = (name) => JSON.parse(readFileSync(join(folder, name), 'utf8'));
const config = read('provider.json');
const users = () => read('users.json');

// seconds an access token lives, per client (the expired-token test's client: two)
const accessTokenTTL = (client) => (config.access_token_ttl || {})[client?.clientId] || 600;

function claimsOf(name) {
  const user = users()[name];
  if (!user) return undefined;
  return { sub: name, preferred_username: name, email: user.email, groups: user.groups };
}

const provider = new Provider(config.issuer, {
  clients: config.clients,
  jwks: read('jwks.json'),
  cookies: { keys: [config.cookie_key] },
  claims: { openid: ['sub'], profile: ['preferred_username'], email: ['email'], groups: ['groups'] },
  scopes: ['openid', 'profile', 'email', 'groups', 'api'],
  conformIdTokenClaims: false, // the ID token carries the scopes' claims (the groups), as Entra ID and Okta can
  pkce: { required: () => true },
  ttl: { IdToken: 600, AccessToken: (_ctx, _token, client) => accessTokenTTL(client), Session: 3600, Interaction: 600, Grant: 3600 },
  async findAccount(_ctx, id) {
    if (!claimsOf(id)) return undefined;
    return { accountId: id, claims: async () => claimsOf(id) };
  },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  features: {
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (_ctx, _client, oneOf) => oneOf || config.audience,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resource, client) => {
        if (resource !== config.audience) throw new Provider.errors.InvalidTarget();
        return { scope: 'api', audience: config.audience, accessTokenFormat: 'jwt',
                 accessTokenTTL: accessTokenTTL(client),
                 jwt: { sign: { alg: 'RS256' } } };
      },
    },
  },
  async extraTokenClaims(_ctx, token) {
    if (token.kind !== 'AccessToken' || !token.accountId) return undefined;
    const claims = claimsOf(token.accountId);
    return claims && { preferred_username: claims.preferred_username, groups: claims.groups };
  },
});

const page = (uid, message = '') => `<!doctype html><html lang="en"><head><title>Test provider: sign in</title></head>
<body><main><h1>Test provider</h1>${message ? `<p role="alert">${message}</p>` : ''}
<form method="post" action="/interaction/${uid}/login">
<label for="login">Username</label> <input id="login" name="login" autocomplete="username">
<label for="password">Password</label> <input id="password" name="password" type="password">
<button type="submit">Continue</button></form></main></body></html>`;

async function form(req) {
  let body = '';
  for await (const chunk of req) body += chunk;
  return new URLSearchParams(body);
}

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  if (req.method === 'POST' && req.url.endsWith('/login')) {
    const given = await form(req);
    const user = users()[given.get('login')];
    if (!user || user.password !== given.get('password')) {
      res.writeHead(401, { 'content-type': 'text/html' });
      res.end(page(details.uid, 'Unknown username or wrong password'));
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId: given.get('login') } },
                                       { mergeWithLastSubmission: false });
    return;
  }
  if (details.prompt.name === 'login') {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(page(details.uid));
    return;
  }
  // consent for a first-party client, given at once: what the request asks for, granted
  const { missingOIDCScope, missingOIDCClaims, missingResourceScopes } = details.prompt.details;
  const grant = details.grantId ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
  if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(' '));
  if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims);
  for (const [resource, scopes] of Object.entries(missingResourceScopes || {})) {
    grant.addResourceScope(resource, scopes.join(' '));
  }
  await provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } },
                                     { mergeWithLastSubmission: true });
}

const callback = provider.callback();
createServer((req, res) => {
  if (req.url.startsWith('/interaction/')) {
    interaction(req, res).catch((error) => {
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end(String(error.message || error));
    });
  } else {
    callback(req, res);
  }
}).listen(config.port, '127.0.0.1', () => console.log(`listening on ${config.port}`));
