// A Redis storage adapter for oidc-provider, so that every worker of a cluster sees the same
// sessions, grants, codes and refresh tokens (the library's own adapter keeps them in one
// process's memory). Each stored model is a hash: the JSON payload and, once used, the time
// it was consumed. Tokens that belong to a grant are listed under the grant, so revoking the
// grant can delete them.

import Redis from 'ioredis';

const GRANTABLE = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
]);

export function redisAdapterFactory(url, prefix) {
  const redis = new Redis(url, { keyPrefix: prefix, lazyConnect: false });
  return (model) => new RedisAdapter(redis, model);
}

class RedisAdapter {
  constructor(redis, model) {
    this.redis = redis;
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    const batch = this.redis.multi().hset(key, 'payload', JSON.stringify(payload));
    if (expiresIn) {
      batch.expire(key, expiresIn);
    }
    if (GRANTABLE.has(this.model) && payload.grantId) {
      const grantKey = `grant:${payload.grantId}`;
      batch.rpush(grantKey, key);
      if (expiresIn) {
        batch.expire(grantKey, expiresIn, 'GT');
      }
    }
    if (payload.uid && this.model === 'Session') {
      batch.set(`sessionUid:${payload.uid}`, id, ...(expiresIn ? ['EX', expiresIn] : []));
    }
    if (payload.userCode) {
      batch.set(`userCode:${payload.userCode}`, id, ...(expiresIn ? ['EX', expiresIn] : []));
    }
    await batch.exec();
  }

  async find(id) {
    const [payload, consumed] = await this.redis.hmget(this.key(id), 'payload', 'consumed');
    if (payload === null) {
      return undefined;
    }
    const found = JSON.parse(payload);
    if (consumed !== null) {
      found.consumed = Number(consumed);
    }
    return found;
  }

  async findByUid(uid) {
    const id = await this.redis.get(`sessionUid:${uid}`);
    return id === null ? undefined : this.find(id);
  }

  async findByUserCode(userCode) {
    const id = await this.redis.get(`userCode:${userCode}`);
    return id === null ? undefined : this.find(id);
  }

  async consume(id) {
    await this.redis.hset(this.key(id), 'consumed', Math.floor(Date.now() / 1000));
  }

  async destroy(id) {
    await this.redis.del(this.key(id));
  }

  async revokeByGrantId(grantId) {
    const grantKey = `grant:${grantId}`;
    const members = await this.redis.lrange(grantKey, 0, -1);
    // Members are stored as unprefixed key names; ioredis adds the prefix when deleting.
    await this.redis.del(...members, grantKey);
  }
}
