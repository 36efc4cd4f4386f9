import { RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import * as kms from 'aws-cdk-lib/aws-kms';
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
 * event log, partners and their key hashes, subscriptions and their sealed secrets, delivery
 * history), and the KMS key that seals those secrets. It changes rarely, has termination
 * protection, and its tables and key are retained (the tables deletion-protected too), so the
 * service stack can be changed, or deleted and deployed again, without putting data at risk.
 */
export class DataStack extends Stack {
  public readonly tables: DispatcherTables;
  /**
   * Seals the subscriptions' signing secrets (envelope encryption: kms-cipher.ts). Its
   * material rotates every year, and KMS keeps the old material, so nothing is re-encrypted.
   * Without it the secrets cannot be read: it is never deleted with the stack.
   */
  public readonly secretsKey: kms.Key;

  constructor(scope: Construct, id: string, props: StackProps = {}) {
    super(scope, id, { terminationProtection: true, ...props });
    this.tables = {
      events: new DefinedTable(this, EVENTS_TABLE.name, { definition: EVENTS_TABLE }),
      partners: new DefinedTable(this, PARTNERS_TABLE.name, { definition: PARTNERS_TABLE }),
      subscriptions: new DefinedTable(this, SUBSCRIPTIONS_TABLE.name, { definition: SUBSCRIPTIONS_TABLE }),
      deliveries: new DefinedTable(this, DELIVERIES_TABLE.name, { definition: DELIVERIES_TABLE }),
    };
    this.secretsKey = new kms.Key(this, 'SigningSecretsKey', {
      description: 'Seals the webhook signing secrets of the subscriptions table',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const built = new Set(Object.values(this.tables).map((table) => table.definition));
    const missing = TABLES.filter((definition) => !built.has(definition)).map(
      (definition) => definition.name,
    );
    if (missing.length > 0) throw new Error(`${id}: no table built for ${missing.join(', ')}`);
  }
}
