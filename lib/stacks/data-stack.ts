import { Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import {
  DELIVERIES_TABLE,
  EVENTS_TABLE,
  PARTNERS_TABLE,
  SUBSCRIPTIONS_TABLE,
  TABLES,
} from '../../functions/adapters/aws/tables.ts';
import { DefinedTable } from '../constructs/table.ts';

/** The four tables, by role. */
export interface DispatcherTables {
  readonly events: DefinedTable;
  readonly partners: DefinedTable;
  readonly subscriptions: DefinedTable;
  readonly deliveries: DefinedTable;
}

/**
 * The stateful stack: the DynamoDB tables, which hold what cannot be rebuilt from code (the
 * event log, partners and their key hashes, subscriptions and their secrets, delivery
 * history). It changes rarely, has termination protection, and its tables are retained and
 * deletion-protected, so the service stack can be changed, or deleted and deployed again,
 * without putting data at risk.
 */
export class DataStack extends Stack {
  public readonly tables: DispatcherTables;

  constructor(scope: Construct, id: string, props: StackProps = {}) {
    super(scope, id, { terminationProtection: true, ...props });
    this.tables = {
      events: new DefinedTable(this, EVENTS_TABLE.name, { definition: EVENTS_TABLE }),
      partners: new DefinedTable(this, PARTNERS_TABLE.name, { definition: PARTNERS_TABLE }),
      subscriptions: new DefinedTable(this, SUBSCRIPTIONS_TABLE.name, { definition: SUBSCRIPTIONS_TABLE }),
      deliveries: new DefinedTable(this, DELIVERIES_TABLE.name, { definition: DELIVERIES_TABLE }),
    };
    const built = new Set(Object.values(this.tables).map((table) => table.definition));
    const missing = TABLES.filter((definition) => !built.has(definition)).map(
      (definition) => definition.name,
    );
    if (missing.length > 0) throw new Error(`${id}: no table built for ${missing.join(', ')}`);
  }
}
