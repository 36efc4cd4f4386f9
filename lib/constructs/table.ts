import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import { Construct } from 'constructs';
import type { KeyAttribute, TableDefinition } from '../../functions/adapters/aws/tables.ts';

export interface DefinedTableProps {
  /** The table's design, one of `TABLES` in functions/adapters/aws/tables.ts. */
  readonly definition: TableDefinition;
  /**
   * What CloudFormation does with the table when it leaves the stack.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * DynamoDB's own guard against deleting the table (by anyone, not only CloudFormation).
   * @default true
   */
  readonly deletionProtection?: boolean;
}

const ATTRIBUTE_TYPES: Record<KeyAttribute['type'], dynamodb.AttributeType> = {
  S: dynamodb.AttributeType.STRING,
  N: dynamodb.AttributeType.NUMBER,
};

function attribute(key: KeyAttribute): dynamodb.Attribute {
  return { name: key.name, type: ATTRIBUTE_TYPES[key.type] };
}

/**
 * A DynamoDB table built from its definition, so the deployed keys, indexes, stream and TTL
 * are the ones the adapters and the DynamoDB Local tests use: on-demand, point-in-time
 * recovery on, TTL on `definition.ttlAttribute`, a NEW_IMAGE stream when the definition asks.
 */
export class DefinedTable extends Construct {
  public readonly table: dynamodb.Table;
  public readonly definition: TableDefinition;

  constructor(scope: Construct, id: string, props: DefinedTableProps) {
    super(scope, id);
    const { definition } = props;
    const indexNames = definition.globalIndexes.map((index) => index.indexName);
    if (new Set(indexNames).size !== indexNames.length) {
      throw new Error(`table ${definition.name}: index names must be unique, got ${indexNames.join(', ')}`);
    }
    if (definition.ttlAttribute.trim() === '') {
      throw new Error(`table ${definition.name}: ttlAttribute must name an attribute`);
    }

    this.definition = definition;
    this.table = new dynamodb.Table(this, 'Table', {
      partitionKey: attribute(definition.partitionKey),
      ...(definition.sortKey ? { sortKey: attribute(definition.sortKey) } : {}),
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      timeToLiveAttribute: definition.ttlAttribute,
      ...(definition.stream ? { stream: dynamodb.StreamViewType.NEW_IMAGE } : {}),
      deletionProtection: props.deletionProtection ?? true,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
    for (const index of definition.globalIndexes) {
      this.table.addGlobalSecondaryIndex({
        indexName: index.indexName,
        partitionKey: attribute(index.partitionKey),
        ...(index.sortKey ? { sortKey: attribute(index.sortKey) } : {}),
        // Keys only where the adapter reads whole items by key after the query: a try then
        // changes nothing the index holds, and writes nothing to it.
        projectionType:
          index.projection === 'KEYS_ONLY' ? dynamodb.ProjectionType.KEYS_ONLY : dynamodb.ProjectionType.ALL,
      });
    }
  }

  /** The stream's ARN; only the tables whose definition has a stream have one. */
  public get streamArn(): string {
    const arn = this.table.tableStreamArn;
    if (arn === undefined) throw new Error(`table ${this.definition.name} has no stream`);
    return arn;
  }
}
