// node-oidc-provider configured to do the work idp does in the benchmarks: client_credentials
// with resource indicators and ES256 JWT access tokens, introspection, and the authorization
// code flow with PKCE, consent remembered in the grant, and refresh tokens rotated on every use.
//
// Configuration is JSON in BENCH_NODE_CONFIG:
//   issuer        "http://127.0.0.1:PORT"; the server listens there.
//   workers       node:cluster workers sharing the port (the primary only supervises).
//   redis_url, redis_prefix
//                 where every worker keeps sessions, grants, codes and refresh tokens.
//   resource      the resource server (JWT access tokens, ES256) and its `scopes`.
//   opaque_resource
//                 a second resource whose access tokens are opaque: oidc-provider does not
//                 introspect JWT access tokens, so the introspection scenario uses these.
//   clients       client metadata, each with client_secret_basic.
//   account       {login, sub, email}: the one person who signs in.
//
// Stdout carries "READY <issuer>" once every worker listens; SIGTERM stops the cluster.

import cluster from 'node:cluster';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

import Provider, { errors } from 'oidc-provider';

import { redisAdapterFactory } from './adapter.mjs';

const TTL_SECONDS = {
  AccessToken: 900,
  AuthorizationCode: 120,
  ClientCredentials: 900,
  Grant: 90 * 86400,
  IdToken: 600,
  Interaction: 600,
  RefreshToken: 30 * 86400,
  Session: 7 * 86400,
};

function readConfig() {
  const text = process.env.BENCH_NODE_CONFIG;
  if (!text) {
    throw new Error('BENCH_NODE_CONFIG must hold the JSON configuration');
  }
  return JSON.parse(text);
}

// One set of keys for the whole cluster, made by the primary and handed to each worker, so a
// token signed by one worker verifies at another.
function newSecrets() {
  const jwk = (type, options, alg) => ({
    ...generateKeyPairSync(type, options).privateKey.export({ format: 'jwk' }),
    kid: randomBytes(8).toString('hex'),
    alg,
    use: 'sig',
  });
  return {
    keys: [jwk('ec', { namedCurve: 'P-256' }, 'ES256'), jwk('rsa', { modulusLength: 2048 }, 'RS256')],
    cookieKeys: [randomBytes(32).toString('hex')],
  };
}

function resourceServers(config) {
  const common = { scope: config.scopes.join(' '), accessTokenTTL: TTL_SECONDS.AccessToken };
  return new Map([
    [config.resource, {
      ...common,
      audience: config.resource,
      accessTokenFormat: 'jwt',
      jwt: { sign: { alg: 'ES256' } },
    }],
    [config.opaque_resource, {
      ...common,
      audience: config.opaque_resource,
      accessTokenFormat: 'opaque',
    }],
  ]);
}

function buildProvider(config, secrets) {
  const servers = resourceServers(config);
  const { account } = config;
  return new Provider(config.issuer, {
    adapter: redisAdapterFactory(config.redis_url, config.redis_prefix),
    clients: config.clients.map((client) => ({
      token_endpoint_auth_method: 'client_secret_basic',
      ...client,
    })),
    findAccount: async (_ctx, sub) => (sub !== account.sub ? undefined : {
      accountId: sub,
      claims: async () => ({ sub, email: account.email, email_verified: true }),
    }),
    scopes: ['openid', 'offline_access', ...config.scopes],
    claims: { openid: ['sub'], email: ['email', 'email_verified'] },
    jwks: { keys: secrets.keys },
    cookies: { keys: secrets.cookieKeys },
    pkce: { required: () => true },
    ttl: TTL_SECONDS,
    // idp issues refresh tokens to these clients and rotates them on every use; do the same.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: () => true,
    features: {
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      devInteractions: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx, _client, oneOf) => oneOf ?? config.resource,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, indicator) => {
          const info = servers.get(indicator);
          if (info === undefined) {
            throw new errors.InvalidTarget();
          }
          return info;
        },
      },
    },
  });
}

// The development login form makes whatever was typed the account id: map the login to sub.
function translateLogin(provider, account) {
  const finish = provider.interactionFinished.bind(provider);
  provider.interactionFinished = (req, res, result, options) => {
    if (result.login === undefined) {
      return finish(req, res, result, options);
    }
    const outcome = result.login.accountId === account.login
      ? { ...result, login: { ...result.login, accountId: account.sub } }
      : { error: 'access_denied', error_description: 'unknown login' };
    return finish(req, res, outcome, options);
  };
}

function runWorker(config) {
  const secrets = JSON.parse(process.env.BENCH_NODE_SECRETS);
  const provider = buildProvider(config, secrets);
  translateLogin(provider, config.account);
  const issuer = new URL(config.issuer);
  createServer(provider.callback()).listen(Number(issuer.port), issuer.hostname);
}

function runPrimary(config) {
  const env = { BENCH_NODE_SECRETS: JSON.stringify(newSecrets()) };
  let listening = 0;
  for (let i = 0; i < config.workers; i += 1) {
    cluster.fork(env).on('listening', () => {
      listening += 1;
      if (listening === config.workers) {
        process.stdout.write(`READY ${config.issuer}\n`);
      }
    });
  }
  cluster.on('exit', (_worker, code) => {
    console.error(`a worker exited with ${code}; stopping`);
    process.exit(1);
  });
  const stop = () => {
    cluster.removeAllListeners('exit');
    for (const worker of Object.values(cluster.workers)) {
      worker.process.kill('SIGTERM');
    }
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

const config = readConfig();
if (cluster.isPrimary) {
  runPrimary(config);
} else {
  runWorker(config);
}
