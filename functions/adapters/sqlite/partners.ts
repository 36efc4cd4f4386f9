import type { ApiKeyRecord, Partner } from '../../core/model.ts';
import type { ApiKeyChange, PartnerStore } from '../../core/ports.ts';
import { setBounded } from '../bounded-map.ts';
import { prepared, type Row, readOptionalText, readText, type SqliteDatabase, write } from './database.ts';

/** Partners a store keeps in memory at most, once read. */
const REMEMBERED_PARTNERS = 10_000;

function toPartner(row: Row): Partner {
  return { id: readText(row, 'id'), name: readText(row, 'name'), createdAt: readText(row, 'created_at') };
}

const KEY_COLUMNS = 'id, partner_id, key_hash, name, prefix, created_at, last_used_at';

function toApiKey(row: Row): ApiKeyRecord {
  const lastUsedAt = readOptionalText(row, 'last_used_at');
  return {
    id: readText(row, 'id'),
    partnerId: readText(row, 'partner_id'),
    hash: readText(row, 'key_hash'),
    name: readText(row, 'name'),
    prefix: readText(row, 'prefix'),
    createdAt: readText(row, 'created_at'),
    ...(lastUsedAt === undefined ? {} : { lastUsedAt }),
  };
}

export class SqlitePartnerStore implements PartnerStore {
  readonly #db: SqliteDatabase;
  /**
   * Partners read before: a partner is never changed or removed once created, and every
   * event published names one, so it is read from the database once.
   */
  readonly #known = new Map<string, Partner>();

  constructor(db: SqliteDatabase) {
    this.#db = db;
  }

  /** Throws on a duplicate id or API key hash (both unique), storing nothing. */
  async create(partner: Partner, firstKey: ApiKeyRecord): Promise<void> {
    const db = this.#db;
    await write(db, () => {
      prepared(db, 'INSERT INTO partners (id, name, created_at) VALUES (?, ?, ?)').run(
        partner.id,
        partner.name,
        partner.createdAt,
      );
      this.#insertKey(firstKey);
    });
  }

  async get(partnerId: string): Promise<Partner | undefined> {
    const known = this.#known.get(partnerId);
    if (known !== undefined) return { ...known };
    const row = prepared(this.#db, 'SELECT id, name, created_at FROM partners WHERE id = ?').get(partnerId);
    if (row === undefined) return undefined;
    const partner = toPartner(row);
    setBounded(this.#known, partnerId, partner, REMEMBERED_PARTNERS);
    return { ...partner };
  }

  async findApiKey(apiKeyHash: string): Promise<ApiKeyRecord | undefined> {
    const row = prepared(this.#db, `SELECT ${KEY_COLUMNS} FROM api_keys WHERE key_hash = ?`).get(apiKeyHash);
    return row === undefined ? undefined : toApiKey(row);
  }

  /** The count and the insert share the write lock, so the cap holds under concurrent adds. */
  async addApiKey(key: ApiKeyRecord, options: { maxPerPartner: number }): Promise<ApiKeyChange> {
    const db = this.#db;
    return write(db, (): ApiKeyChange => {
      if (prepared(db, 'SELECT 1 FROM partners WHERE id = ?').get(key.partnerId) === undefined)
        return 'no-partner';
      if (this.#count(key.partnerId) >= options.maxPerPartner) return 'limit';
      this.#insertKey(key);
      return 'done';
    });
  }

  async listApiKeys(partnerId: string): Promise<ApiKeyRecord[]> {
    return prepared(
      this.#db,
      `SELECT ${KEY_COLUMNS} FROM api_keys WHERE partner_id = ? ORDER BY created_at, id`,
    )
      .all(partnerId)
      .map(toApiKey);
  }

  async removeApiKey(
    partnerId: string,
    keyId: string,
    options: { keepLast: boolean },
  ): Promise<ApiKeyChange> {
    const db = this.#db;
    return write(db, (): ApiKeyChange => {
      const found = prepared(db, 'SELECT 1 FROM api_keys WHERE id = ? AND partner_id = ?').get(
        keyId,
        partnerId,
      );
      if (found === undefined) return 'not-found';
      if (options.keepLast && this.#count(partnerId) <= 1) return 'last';
      prepared(db, 'DELETE FROM api_keys WHERE id = ? AND partner_id = ?').run(keyId, partnerId);
      return 'done';
    });
  }

  async touchApiKey(key: ApiKeyRecord, at: string, staleBefore: string): Promise<void> {
    const db = this.#db;
    await write(db, () =>
      prepared(
        db,
        'UPDATE api_keys SET last_used_at = ? WHERE key_hash = ? AND (last_used_at IS NULL OR last_used_at < ?)',
      ).run(at, key.hash, staleBefore),
    );
  }

  #count(partnerId: string): number {
    const row = prepared(this.#db, 'SELECT count(*) AS n FROM api_keys WHERE partner_id = ?').get(partnerId);
    return Number(row?.n ?? 0);
  }

  #insertKey(key: ApiKeyRecord): void {
    prepared(this.#db, `INSERT INTO api_keys (${KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)`).run(
      key.id,
      key.partnerId,
      key.hash,
      key.name,
      key.prefix,
      key.createdAt,
      key.lastUsedAt ?? null,
    );
  }
}
