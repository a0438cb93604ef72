// Test identity provider for the OAuth end-to-end tests: panva's oidc-provider (pinned in
// scripts/test-tools/package.json) on 127.0.0.1, configured as the authorization server of the MCP
// server under test (an OAuth 2.1 resource server).
//
//   scripts/test-tools.sh node && source .cache/tools/env.sh
//   "$NODE22" tests/idp/oidc-provider.mjs --resource http://127.0.0.1:4000/mcp [--port 0]
//
// When it listens it prints exactly one line to stdout and nothing else ever goes there (logs: stderr):
//   {"issuer":"http://127.0.0.1:PORT","port":PORT}
// then runs until SIGTERM/SIGINT (exit 0). Exit 1 (message on stderr) if it cannot start.
//
// Finding oidc-provider: from $DTMCP_NODE_MODULES if set, else $DTMCP_TOOLS_DIR/node/node_modules, else
// <repo>/.cache/tools/node/node_modules (where scripts/test-tools.sh installs the node group). No NODE_PATH
// needed: the package is resolved from that directory and import()ed by absolute path.
//
// Options (a flag wins over its environment variable):
//   --port N              IDP_PORT            port on 127.0.0.1; 0 (default) = any free port
//   --resource URL        IDP_RESOURCE        the MCP server's canonical URL (resource indicator, RFC 8707).
//                                             Required. Compared as an exact string.
//   --other-resource URL  IDP_OTHER_RESOURCE  a second accepted resource, to mint tokens with the WRONG
//                                             audience (default http://127.0.0.1:9/other)
//   --dynamic-client-ttl N IDP_DYNAMIC_CLIENT_TTL  access token lifetime in seconds for dynamically
//                                             registered clients (authorization code flow); default 3600
//   --oidc-discovery-only IDP_OIDC_DISCOVERY_ONLY=1  answer 404 at /.well-known/oauth-authorization-server,
//                                             so clients must fall back to /.well-known/openid-configuration.
//                                             Default: oidc-provider serves the same document at both.
//
// What it issues
//   issuer        http://127.0.0.1:PORT   (no trailing slash; the same metadata at
//                 /.well-known/oauth-authorization-server (RFC 8414) and /.well-known/openid-configuration)
//   jwks_uri      http://127.0.0.1:PORT/jwks      token endpoint /token, authorization /auth, DCR /reg,
//                 introspection /token/introspection, revocation /token/revocation
//   scopes        dynatrace:read dynatrace:davis dynatrace:write (+ openid offline_access)
//   Access tokens for --resource or --other-resource (the request must carry resource=URL; without it a
//   token is opaque, not a JWT): JWT, header {"alg":"RS256","typ":"at+jwt","kid":...}, claims
//   iss, sub, aud (= the resource), client_id, scope (space-separated, only the dynatrace:* scopes granted),
//   jti, iat, exp. For client_credentials, sub = client_id; for the authorization code flow, sub = the login
//   name typed in the login form. Lifetime 1 h (2 s for client `shortlived`, --dynamic-client-ttl for
//   dynamically registered clients).
//
// Pre-registered confidential clients (grant client_credentials only, token_endpoint_auth_method
// client_secret_basic: HTTP Basic with the id and secret below; client_secret_post (client_id and
// client_secret in the form body) is accepted too).
// Request the scopes you want (e.g. all three); the token gets those the client may have, the others are
// silently dropped (no invalid_scope error). Without a scope parameter the token has no scope claim.
//   client id    secret              may get
//   reader       reader-secret       dynatrace:read
//   analyst      analyst-secret      dynatrace:read dynatrace:davis
//   operator     operator-secret     dynatrace:read dynatrace:davis dynatrace:write
//   none         none-secret         nothing (its tokens carry no scope claim)
//   shortlived   shortlived-secret   all three, tokens expire after 2 s
//   prodonly     prodonly-secret     dynatrace:read dynatrace:env.prod (the environment scope of one alias)
//   e.g. curl -s -u operator:operator-secret -d grant_type=client_credentials \
//          -d 'scope=dynatrace:read dynatrace:davis dynatrace:write' \
//          -d resource=http://127.0.0.1:4000/mcp http://127.0.0.1:PORT/token
//
// Authorization code + PKCE (S256, required for public clients) with open dynamic client registration
// (POST /reg, no initial access token; public clients use token_endpoint_auth_method "none"). The user
// interaction is oidc-provider's devInteractions: GET /auth?... redirects (303) to /interaction/UID, an
// HTML login form (fields prompt=login, login, password: any values), then a consent form (prompt=consent)
// that grants every requested scope; then a redirect to the client's redirect_uri with code, state and iss
// (RFC 9207). Cookies must be kept between these requests. Refresh tokens are issued when offline_access is
// requested with prompt=consent (what the MCP Python SDK does).
//
// Test routes (same port, JSON responses):
//   POST /_test/rotate[?keep_old=0]  replace the signing key by a new RSA key with a new kid; the JWKS then
//                                    lists the new key first and (unless keep_old=0) the previous ones too,
//                                    so tokens issued before still verify. Tokens issued afterwards carry
//                                    the new kid. Returns {"kid": new, "kids": [published kids]}.
//                                    Registered clients, sessions and grants survive a rotation.
//   GET  /_test/stats                {"jwks_fetches": N, "rotations": N, "kid": current, "kids": [...]}:
//                                    jwks_fetches counts GET /jwks requests since start.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

// stdout carries only the ready line; anything a library logs goes to stderr.
console.log = console.info = console.debug = (...a) => console.error(...a);
const die = (msg) => { process.stderr.write(`oidc-provider.mjs: ${msg}\n`); process.exit(1); };

// ------------------------------------------------------------------------------------------ options
let opts;
try {
  ({ values: opts } = parseArgs({
    options: {
      port: { type: 'string' },
      resource: { type: 'string' },
      'other-resource': { type: 'string' },
      'oidc-discovery-only': { type: 'boolean' },
      'dynamic-client-ttl': { type: 'string' },
    },
  }));
} catch (e) { die(e.message); }
const env = process.env;
const PORT = Number(opts.port ?? env.IDP_PORT ?? 0);
const RESOURCE = opts.resource ?? env.IDP_RESOURCE;
const OTHER_RESOURCE = opts['other-resource'] ?? env.IDP_OTHER_RESOURCE ?? 'http://127.0.0.1:9/other';
const OIDC_ONLY = opts['oidc-discovery-only']
  ?? ['1', 'true', 'yes'].includes((env.IDP_OIDC_DISCOVERY_ONLY ?? '').toLowerCase());
const DYNAMIC_TTL = Number(opts['dynamic-client-ttl'] ?? env.IDP_DYNAMIC_CLIENT_TTL ?? 3600);
if (!Number.isInteger(DYNAMIC_TTL) || DYNAMIC_TTL < 1) die('--dynamic-client-ttl must be a positive integer');
if (!Number.isInteger(PORT) || PORT < 0 || PORT > 65535) die(`bad port ${opts.port ?? env.IDP_PORT}`);
if (!RESOURCE || !URL.canParse(RESOURCE)) die('--resource URL (or IDP_RESOURCE) is required: the MCP server\'s canonical URL');
if (!URL.canParse(OTHER_RESOURCE)) die(`bad --other-resource ${OTHER_RESOURCE}`);

// ------------------------------------------------------------------------------------------ oidc-provider
const here = path.dirname(fileURLToPath(import.meta.url));
const nodeModules = env.DTMCP_NODE_MODULES
  || path.join(env.DTMCP_TOOLS_DIR || path.join(here, '..', '..', '.cache', 'tools'), 'node', 'node_modules');
let Provider, errors, createMemoryAdapter;
try {
  const entry = createRequire(path.join(nodeModules, 'noop.js')).resolve('oidc-provider');
  ({ default: Provider, errors } = await import(pathToFileURL(entry).href));
  // oidc-provider's own in-memory adapter, but one store for every Provider instance (see rotation below).
  ({ createMemoryAdapter } = await import(pathToFileURL(path.join(path.dirname(entry), 'adapters', 'memory_adapter.js')).href));
} catch (e) {
  die(`cannot load oidc-provider from ${nodeModules} (${e.message}); install it: scripts/test-tools.sh node`);
}

const DT_SCOPES = ['dynatrace:read', 'dynatrace:davis', 'dynatrace:write'];
// Per-environment access (DT_ENVIRONMENTS entries with "scope"): only client prodonly gets one.
const ENV_SCOPES = ['dynatrace:env.prod', 'dynatrace:env.staging'];
const HOUR = 3600;
// client id -> [secret, scopes it may get, access token lifetime in seconds]
const STATIC_CLIENTS = {
  reader: ['reader-secret', ['dynatrace:read'], HOUR],
  analyst: ['analyst-secret', ['dynatrace:read', 'dynatrace:davis'], HOUR],
  operator: ['operator-secret', DT_SCOPES, HOUR],
  none: ['none-secret', [], HOUR],
  shortlived: ['shortlived-secret', DT_SCOPES, 2],
  prodonly: ['prodonly-secret', ['dynatrace:read', 'dynatrace:env.prod'], HOUR],
};

let keys = [];       // private JWKs, the signing key first
let rotations = 0;
let jwksFetches = 0;
function newSigningKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: `k${rotations}-${randomBytes(6).toString('hex')}`, alg: 'RS256', use: 'sig' };
}

// oidc-provider reads its keys once, at construction: a rotation builds a new Provider with the new JWKS and
// swaps it in. What must survive that is shared by all instances: the storage (registered clients, sessions,
// interactions, grants, codes, refresh tokens) and the cookie signing keys.
const sharedAdapter = createMemoryAdapter(0);
const cookieKeys = [randomBytes(32).toString('hex')];

function makeProvider(issuer) {
  const provider = new Provider(issuer, {
    jwks: { keys },
    adapter: sharedAdapter,
    findAccount: (_ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }), // any login name is an account
    cookies: { keys: cookieKeys },
    // dynatrace:* must be known scopes: the MCP SDK registers clients (DCR) with them in `scope`.
    scopes: ['openid', 'offline_access', ...DT_SCOPES, ...ENV_SCOPES],
    clients: Object.entries(STATIC_CLIENTS).map(([id, [secret]]) => ({
      client_id: id,
      client_secret: secret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
    })),
    features: {
      devInteractions: { enabled: true },
      registration: { enabled: true },            // open DCR: no initial access token
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx, _client, oneOf) => oneOf, // no resource param: opaque token
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, indicator, client) => {
          if (indicator !== RESOURCE && indicator !== OTHER_RESOURCE) {
            console.error(`oidc-provider.mjs: unknown resource ${JSON.stringify(indicator)} (accepted: ${RESOURCE} ${OTHER_RESOURCE})`);
            throw new errors.InvalidTarget();
          }
          const fixed = STATIC_CLIENTS[client?.clientId];
          return {
            scope: (fixed ? fixed[1] : DT_SCOPES).join(' '),  // dynamically registered clients: all three
            audience: indicator,
            accessTokenTTL: fixed ? fixed[2] : DYNAMIC_TTL,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    pkce: { required: (_ctx, client) => client.clientAuthMethod === 'none' },
    // Only the lifetimes of the artifacts this harness uses (also silences oidc-provider's advice).
    ttl: {
      AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL || HOUR,
      ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL || HOUR,
      AuthorizationCode: 60,
      IdToken: HOUR,
      Interaction: HOUR,
      Session: 24 * HOUR,
      Grant: 24 * HOUR,
      RefreshToken: 24 * HOUR,
    },
  });
  provider.on('server_error', (_ctx, err) => console.error('oidc-provider server_error:', err));
  provider.on('grant.error', (_ctx, err) => console.error(`oidc-provider grant.error: ${err.message} ${err.error_description ?? ''}`));
  return { provider, handler: provider.callback() };
}

// ------------------------------------------------------------------------------------------ HTTP
let current = null;   // { provider, handler } serving requests; replaced on rotation
let issuer = null;

const sendJson = (res, status, body) => {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
};
const publishedKids = () => keys.map((k) => k.kid);

const server = createServer((req, res) => {
  try {
    route(req, res);
  } catch (e) {
    console.error('oidc-provider.mjs: request failed:', e);
    if (!res.headersSent) sendJson(res, 500, { error: 'server_error', error_description: String(e.message) });
  }
});

function route(req, res) {
  if (!current) { res.writeHead(503); res.end(); return; }
  const url = new URL(req.url, issuer);
  if (url.pathname === '/_test/rotate' && req.method === 'POST') {
    rotations += 1;
    const fresh = newSigningKey();
    keys = url.searchParams.get('keep_old') === '0' ? [fresh] : [fresh, ...keys];
    current = makeProvider(issuer);
    console.error(`oidc-provider.mjs: rotated signing key, kid ${fresh.kid}; JWKS: ${publishedKids().join(' ')}`);
    sendJson(res, 200, { kid: fresh.kid, kids: publishedKids() });
    return;
  }
  if (url.pathname === '/_test/stats' && req.method === 'GET') {
    sendJson(res, 200, { jwks_fetches: jwksFetches, rotations, kid: keys[0].kid, kids: publishedKids() });
    return;
  }
  if (url.pathname === '/jwks' && req.method === 'GET') jwksFetches += 1;
  if (OIDC_ONLY && url.pathname.startsWith('/.well-known/oauth-authorization-server')) {
    sendJson(res, 404, { error: 'not_found' });
    return;
  }
  current.handler(req, res);
}

server.on('error', (e) => die(`cannot listen on 127.0.0.1:${PORT}: ${e.message}`));
server.listen(PORT, '127.0.0.1', () => {
  const { port } = server.address();
  issuer = `http://127.0.0.1:${port}`;
  keys = [newSigningKey()];
  try {
    current = makeProvider(issuer);
  } catch (e) {
    die(`oidc-provider configuration rejected: ${e.stack || e}`);
  }
  console.error(`oidc-provider.mjs: issuer ${issuer}, resources ${RESOURCE} ${OTHER_RESOURCE}, kid ${keys[0].kid}`);
  process.stdout.write(`${JSON.stringify({ issuer, port })}\n`);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}
