import type { Partner } from '../../core/model.ts';
import type { PartnerStore } from '../../core/ports.ts';
import { prepared, type Row, readText, type SqliteDatabase, write } from './database.ts';

function toPartner(row: Row): Partner {
  return { id: readText(row, 'id'), name: readText(row, 'name'), createdAt: readText(row, 'created_at') };
}

export class SqlitePartnerStore implements PartnerStore {
  readonly #db: SqliteDatabase;

  constructor(db: SqliteDatabase) {
    this.#db = db;
  }

  /** Throws on a duplicate id or API key hash (both unique). */
  async create(partner: Partner, apiKeyHash: string): Promise<void> {
    const db = this.#db;
    await write(db, () =>
      prepared(db, 'INSERT INTO partners (id, name, api_key_hash, created_at) VALUES (?, ?, ?, ?)').run(
        partner.id,
        partner.name,
        apiKeyHash,
        partner.createdAt,
      ),
    );
  }

  async get(partnerId: string): Promise<Partner | undefined> {
    const row = prepared(this.#db, 'SELECT id, name, created_at FROM partners WHERE id = ?').get(partnerId);
    return row === undefined ? undefined : toPartner(row);
  }

  async findByApiKeyHash(apiKeyHash: string): Promise<Partner | undefined> {
    const row = prepared(this.#db, 'SELECT id, name, created_at FROM partners WHERE api_key_hash = ?').get(
      apiKeyHash,
    );
    return row === undefined ? undefined : toPartner(row);
  }
}
