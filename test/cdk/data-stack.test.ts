import { Match } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { type KeyAttribute, TABLES } from '../../functions/adapters/aws/tables.ts';
import { type Synthesized, synthesize } from './fixture.ts';

let synth: Synthesized;
beforeAll(() => {
  synth = synthesize();
});

function keySchema(partitionKey: KeyAttribute, sortKey?: KeyAttribute) {
  return [
    { AttributeName: partitionKey.name, KeyType: 'HASH' },
    ...(sortKey ? [{ AttributeName: sortKey.name, KeyType: 'RANGE' }] : []),
  ];
}

describe('DataStack', () => {
  it('has termination protection: it holds the only copy of the data', () => {
    expect(synth.stacks.data.terminationProtection).toBe(true);
  });

  it('creates exactly the tables of tables.ts', () => {
    synth.data.resourceCountIs('AWS::DynamoDB::Table', TABLES.length);
  });

  describe.each(TABLES.map((definition) => [definition.name, definition] as const))(
    'the %s table',
    (_, definition) => {
      const keyAttributes = [
        definition.partitionKey,
        ...(definition.sortKey ? [definition.sortKey] : []),
        ...definition.globalIndexes.flatMap((index) => [
          index.partitionKey,
          ...(index.sortKey ? [index.sortKey] : []),
        ]),
      ];

      it('has the keys and indexes of its definition, on-demand, with PITR and TTL', () => {
        synth.data.hasResourceProperties('AWS::DynamoDB::Table', {
          KeySchema: keySchema(definition.partitionKey, definition.sortKey),
          AttributeDefinitions: Match.arrayWith(
            [...new Map(keyAttributes.map((key) => [key.name, key])).values()].map((key) => ({
              AttributeName: key.name,
              AttributeType: key.type,
            })),
          ),
          BillingMode: 'PAY_PER_REQUEST',
          PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
          TimeToLiveSpecification: { AttributeName: definition.ttlAttribute, Enabled: true },
          ...(definition.globalIndexes.length > 0
            ? {
                GlobalSecondaryIndexes: definition.globalIndexes.map((index) => ({
                  IndexName: index.indexName,
                  KeySchema: keySchema(index.partitionKey, index.sortKey),
                  Projection: { ProjectionType: index.projection ?? 'ALL' },
                })),
              }
            : {}),
          StreamSpecification: definition.stream ? { StreamViewType: 'NEW_IMAGE' } : Match.absent(),
        });
      });
    },
  );

  it('retains and deletion-protects every table', () => {
    synth.data.allResources('AWS::DynamoDB::Table', {
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
      Properties: Match.objectLike({ DeletionProtectionEnabled: true }),
    });
  });
});
