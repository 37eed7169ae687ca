// A certified OpenID provider (panva's oidc-provider) on loopback, for the idp tests to sign in
// against as an enterprise upstream.
//
// Configuration is JSON in the NODE_OP_CONFIG environment variable:
//   issuer    "http://127.0.0.1:PORT/PATH"; the server listens on that host and port and
//             mounts the provider under PATH (an empty path mounts it at the root).
//   clients   [{client_id, client_secret, redirect_uris, ...}]: any client metadata; by default
//             client_secret_basic, the authorization_code grant and the code response type.
//   accounts  [{login, sub, email, email_verified, name}]: who can sign in.
//
// Sign-in uses the provider's own development interactions: a login form (any password is
// accepted for a known login) and then a consent form. PKCE is required of every client.
// Stdout carries "READY <issuer>" once the server listens (library notices may come before it);
// the process exits when its stdin closes or on SIGTERM / SIGINT.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const CLIENT_DEFAULTS = {
  grant_types: ['authorization_code'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
};

// Which claims each scope releases; the ID token carries them too (conformIdTokenClaims off),
// as most enterprise providers do.
const SCOPE_CLAIMS = {
  openid: ['sub'],
  email: ['email', 'email_verified'],
  profile: ['name'],
};

const TTL_SECONDS = {
  AccessToken: 600,
  AuthorizationCode: 60,
  Grant: 600,
  IdToken: 600,
  Interaction: 600,
  Session: 600,
};

function readConfig() {
  const text = process.env.NODE_OP_CONFIG;
  if (!text) {
    throw new Error('NODE_OP_CONFIG must hold the JSON configuration');
  }
  const config = JSON.parse(text);
  for (const key of ['issuer', 'clients', 'accounts']) {
    if (config[key] === undefined) {
      throw new Error(`NODE_OP_CONFIG lacks "${key}"`);
    }
  }
  return config;
}

// A fresh RS256 signing key per run: nothing signed by one test run verifies in another.
function signingKeys() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { keys: [{ ...jwk, kid: randomBytes(8).toString('hex'), alg: 'RS256', use: 'sig' }] };
}

function accountClaims(account) {
  return {
    sub: account.sub,
    email: account.email,
    email_verified: account.email_verified,
    name: account.name,
  };
}

function finder(accountsBySub) {
  return async function findAccount(_ctx, sub) {
    const account = accountsBySub.get(sub);
    if (account === undefined) {
      return undefined;
    }
    return { accountId: sub, claims: async () => accountClaims(account) };
  };
}

function buildProvider(config) {
  const accountsBySub = new Map(config.accounts.map((account) => [account.sub, account]));
  return new Provider(config.issuer, {
    clients: config.clients.map((client) => ({ ...CLIENT_DEFAULTS, ...client })),
    findAccount: finder(accountsBySub),
    claims: SCOPE_CLAIMS,
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    jwks: signingKeys(),
    cookies: { keys: [randomBytes(32).toString('hex')] },
    ttl: TTL_SECONDS,
  });
}

// The development login form makes whatever was typed the account id; the account id must be
// the subject, so a known login is translated to its sub and an unknown one is refused.
function translateLogins(provider, accounts) {
  const subByLogin = new Map(accounts.map((account) => [account.login, account.sub]));
  const finish = provider.interactionFinished.bind(provider);
  provider.interactionFinished = (req, res, result, options) => {
    if (result.login === undefined) {
      return finish(req, res, result, options);
    }
    const sub = subByLogin.get(result.login.accountId);
    const outcome = sub === undefined
      ? { error: 'access_denied', error_description: 'unknown login' }
      : { ...result, login: { ...result.login, accountId: sub } };
    return finish(req, res, outcome, options);
  };
}

// Serve the provider under the issuer's path, the way connect-style frameworks mount it:
// originalUrl keeps the full path so the provider builds its URLs under the mount point.
function mounted(provider, mountPath) {
  const handle = provider.callback();
  return (req, res) => {
    const url = req.url ?? '/';
    const inside = url === mountPath || url.startsWith(`${mountPath}/`)
      || url.startsWith(`${mountPath}?`);
    if (!inside) {
      res.writeHead(404).end();
      return;
    }
    req.originalUrl = url;
    req.url = url.slice(mountPath.length) || '/';
    handle(req, res);
  };
}

function stopOnHangup() {
  const stop = () => process.exit(0);
  process.stdin.on('end', stop);
  process.stdin.on('close', stop);
  process.stdin.resume();
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

function main() {
  const config = readConfig();
  const provider = buildProvider(config);
  translateLogins(provider, config.accounts);

  const issuer = new URL(config.issuer);
  const mountPath = issuer.pathname.replace(/\/$/, '');
  const server = createServer(mounted(provider, mountPath));
  server.on('error', (error) => {
    console.error(`cannot listen on ${issuer.host}: ${error.message}`);
    process.exit(1);
  });

  stopOnHangup();
  server.listen(Number(issuer.port), issuer.hostname, () => {
    process.stdout.write(`READY ${config.issuer}\n`);
  });
}

main();
