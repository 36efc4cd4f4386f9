/**
 * The `dispatcher … --aws --stack` backend (bin/cli/aws.ts): the stack's outputs from a mocked
 * CloudFormation, its queues on a mocked SQS and CloudWatch (aws-sdk-client-mock), its tables
 * on DynamoDB Local, and its API a local HTTP server that checks each request's SigV4
 * signature as API Gateway's IAM authorisation would.
 */
import 'aws-sdk-client-mock-vitest/extend';
import { createHash, createHmac } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  CloudFormationClient,
  CloudFormationServiceException,
  DescribeStacksCommand,
} from '@aws-sdk/client-cloudformation';
import { CloudWatchClient, GetMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import {
  ChangeMessageVisibilityBatchCommand,
  GetQueueAttributesCommand,
  ListMessageMoveTasksCommand,
  ReceiveMessageCommand,
  SQSClient,
  StartMessageMoveTaskCommand,
} from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { awsBackend, STACK_OUTPUTS } from '../../bin/cli/aws.ts';
import { BackendError, type OpsBackend } from '../../bin/cli/backend.ts';
import { DynamoDeliveryStore } from '../../functions/adapters/aws/deliveries.ts';
import { DynamoSubscriptionStore } from '../../functions/adapters/aws/subscriptions.ts';
import { DELIVERIES_TABLE, SUBSCRIPTIONS_TABLE } from '../../functions/adapters/aws/tables.ts';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from '../dynamodb-local/server.ts';
import { localEndpoint, tablesPerTest } from '../dynamodb-local/tables.ts';
import { testCipher } from '../support/cipher.ts';
import { at, id, makeAttempt, makeDelivery, makeEvent, makeSubscription } from './fixtures.ts';

const local = tablesPerTest('cli-aws');
const cloudFormation = mockClient(CloudFormationClient);
const sqs = mockClient(SQSClient);
const cloudWatch = mockClient(CloudWatchClient);
const STACK = 'WebhookDispatcher-test-Service';
const queueUrl = (name: string) => `https://sqs.eu-west-1.amazonaws.com/123456789012/${STACK}-${name}`;
const queueArn = (name: string) => `arn:aws:sqs:eu-west-1:123456789012:${STACK}-${name}`;

/** The outputs the service stack publishes, each queue named after its output. */
function outputs(api: string, tables: { subscriptions: string; deliveries: string }) {
  const values: Record<string, string> = {
    ApiUrl: api,
    SubscriptionsTableName: tables.subscriptions,
    DeliveriesTableName: tables.deliveries,
  };
  for (const key of STACK_OUTPUTS) {
    const queue = /^(\w+)(Url|Arn)$/.exec(key);
    if (queue === null || key === 'ApiUrl') continue;
    const [, name = '', kind] = queue;
    values[key] = kind === 'Url' ? queueUrl(name) : queueArn(name);
  }
  return Object.entries(values).map(([OutputKey, OutputValue]) => ({ OutputKey, OutputValue }));
}

interface Received {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
}

/** The SigV4 signature a request should carry, computed here from the request as received. */
function expectedSignature(request: Received, secretAccessKey: string): string {
  const authorization = String(request.headers.authorization);
  const signedHeaders = /SignedHeaders=([^,]+)/.exec(authorization)?.[1]?.split(';') ?? [];
  const scope = /Credential=[^/]+\/([^,]+)/.exec(authorization)?.[1] ?? '';
  const [date = '', region = '', service = ''] = scope.split('/');
  const amzDate = String(request.headers['x-amz-date']);
  const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
  const canonical = [
    request.method,
    request.path,
    '',
    ...signedHeaders.map((name) => `${name}:${String(request.headers[name]).trim()}`),
    '',
    signedHeaders.join(';'),
    sha256(request.body),
  ].join('\n');
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonical)].join('\n');
  const hmac = (key: string | Buffer, text: string) => createHmac('sha256', key).update(text).digest();
  const key = hmac(hmac(hmac(hmac(`AWS4${secretAccessKey}`, date), region), service), 'aws4_request');
  return createHmac('sha256', key).update(toSign).digest('hex');
}

describe('awsBackend', () => {
  let server: Server;
  let api: string;
  let received: Received[];
  let backend: OpsBackend | undefined;
  let subscriptions: DynamoSubscriptionStore;
  let deliveries: DynamoDeliveryStore;
  let tables: { subscriptions: string; deliveries: string };

  beforeAll(async () => {
    server = createServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => {
        body += chunk.toString('utf8');
      });
      request.on('end', () => {
        received.push({
          method: request.method ?? '',
          path: request.url ?? '',
          headers: request.headers,
          body,
        });
        response.writeHead(request.url === '/v1/partners' ? 201 : 202, {
          'content-type': 'application/json',
        });
        response.end(
          request.url === '/v1/partners'
            ? JSON.stringify({
                id: 'ptr_1',
                name: 'acme',
                createdAt: at(),
                apiKey: 'dk_secret',
                apiKeyId: 'key_1',
              })
            : JSON.stringify({ id: 'evt_1', created: true }),
        );
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    api = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  beforeEach(async () => {
    received = [];
    tables = {
      subscriptions: await local.table(SUBSCRIPTIONS_TABLE),
      deliveries: await local.table(DELIVERIES_TABLE),
    };
    subscriptions = new DynamoSubscriptionStore(local.client, tables.subscriptions, testCipher());
    deliveries = new DynamoDeliveryStore(local.client, tables.deliveries);
    cloudFormation.on(DescribeStacksCommand, { StackName: STACK }).resolves({
      Stacks: [
        {
          StackName: STACK,
          CreationTime: new Date(),
          StackStatus: 'UPDATE_COMPLETE',
          Outputs: outputs(api, tables),
        },
      ],
    });
    sqs.on(GetQueueAttributesCommand).resolves({
      Attributes: {
        ApproximateNumberOfMessages: '3',
        ApproximateNumberOfMessagesNotVisible: '0',
        ApproximateNumberOfMessagesDelayed: '0',
      },
    });
    cloudWatch.on(GetMetricDataCommand).resolves({ MetricDataResults: [] });
  });

  afterEach(async () => {
    await backend?.close();
    backend = undefined;
    cloudFormation.reset();
    sqs.reset();
    cloudWatch.reset();
  });

  async function open(): Promise<OpsBackend> {
    backend = await awsBackend({
      stack: STACK,
      region: LOCAL_REGION,
      credentials: LOCAL_CREDENTIALS,
      dynamoEndpoint: localEndpoint(),
    });
    return backend;
  }

  it('finds the stack’s queues from its outputs, named as ops name them', async () => {
    const queues = await (await open()).queues();

    expect(queues.map((q) => q.name)).toEqual([
      'fanout',
      'fanout-dlq',
      'delivery',
      'delivery-dlq',
      'slow',
      'slow-dlq',
      'pipe-recovery',
      'pipe-dlq',
    ]);
    expect(sqs).toHaveReceivedCommandWith(GetQueueAttributesCommand, {
      QueueUrl: queueUrl('PipeDeadLetterQueue'),
    });
    expect(backend?.target).toBe(`${STACK} (${LOCAL_REGION})`);
  });

  it.each([
    ['delivery-dlq', 'DeliveryDeadLetterQueue', 'DeliveryQueue'],
    ['pipe-dlq', 'PipeDeadLetterQueue', 'PipeRecoveryQueue'],
    ['fanout-dlq', 'FanoutDeadLetterQueue', 'FanoutQueue'],
  ])('redrives %s with a move task to the queue it redrives to', async (queue, source, destination) => {
    sqs.on(ListMessageMoveTasksCommand).resolves({ Results: [] });
    sqs.on(StartMessageMoveTaskCommand).resolves({ TaskHandle: 'handle-1' });

    const result = await (await open()).redrive(queue, {});

    expect(result).toMatchObject({
      dryRun: false,
      task: { id: 'handle-1', queue, status: 'running', toMove: 3 },
    });
    expect(sqs).toHaveReceivedCommandWith(StartMessageMoveTaskCommand, {
      SourceArn: queueArn(source),
      DestinationArn: queueArn(destination),
    });
  });

  it('explains a delivery’s dead letter from the tables, without opening the subscription’s secrets', async () => {
    const partnerId = id('ptr');
    const subscription = makeSubscription(partnerId, { url: 'https://hooks.example.com/dead' });
    await subscriptions.put(subscription);
    const delivery = makeDelivery(makeEvent(partnerId), subscription.id);
    await deliveries.createForEvent([delivery]);
    await deliveries.recordAttempt(
      makeAttempt(delivery, { statusCode: 503, error: 'http_status', responseExcerpt: 'busy' }),
      { ...delivery, status: 'dead', attempts: 1, updatedAt: at(1), lastAttemptAt: at(1) },
    );
    const message = {
      deliveryId: delivery.id,
      eventId: delivery.eventId,
      subscriptionId: subscription.id,
      partnerId,
      attempt: 2,
      step: 0,
    };
    sqs
      .on(ReceiveMessageCommand)
      .resolvesOnce({
        Messages: [
          {
            MessageId: 'm1',
            ReceiptHandle: 'r1',
            Body: JSON.stringify(message),
            Attributes: { SentTimestamp: String(Date.parse(at(2))), ApproximateReceiveCount: '1' },
          },
        ],
      })
      .resolves({ Messages: [] });
    sqs.on(ChangeMessageVisibilityBatchCommand).resolves({ Successful: [{ Id: '0' }], Failed: [] });

    const [letter, ...others] = await (await open()).deadLetters('delivery-dlq', 10);

    expect(others).toEqual([]);
    expect(letter).toMatchObject({
      kind: 'delivery',
      queue: 'delivery-dlq',
      deliveryId: delivery.id,
      url: 'https://hooks.example.com/dead',
      deliveryStatus: 'dead',
      tries: 1,
      // Sent to the DLQ by the dispatcher after its last try: dead since then.
      receiveCount: 0,
      deadAt: at(2),
    });
    expect(letter?.reason).toMatch(/^HTTP 503: busy/);
  });

  it('lists every partner’s disabled subscriptions from the table', async () => {
    const disabled = makeSubscription(id('ptr'), { status: 'disabled', disabledReason: 'HTTP 410' });
    await subscriptions.put(disabled);
    await subscriptions.put(makeSubscription(id('ptr')));

    const page = await (await open()).subscriptions('disabled', { limit: 10 });

    expect(page.items.map((s) => [s.id, s.disabledReason])).toEqual([[disabled.id, 'HTTP 410']]);
  });

  it('reports a queue the stack has not as the use cases do, with its status', async () => {
    const error = await (await open()).purge('nope').catch((e: unknown) => e);

    expect(error).toBeInstanceOf(BackendError);
    expect((error as BackendError).status).toBe(404);
    expect((error as Error).message).toMatch(/delivery-dlq/);
  });

  it('registers partners and publishes through the stack’s API, SigV4-signed for execute-api', async () => {
    const ops = await open();

    expect(await ops.createPartner('acme')).toMatchObject({ id: 'ptr_1', apiKey: 'dk_secret' });
    expect(await ops.publish({ partnerId: 'ptr_1', type: 'order.created', payload: { n: 1 } })).toEqual({
      id: 'evt_1',
      created: true,
    });

    expect(received.map((r) => [r.method, r.path, JSON.parse(r.body)])).toEqual([
      ['POST', '/v1/partners', { name: 'acme' }],
      ['POST', '/v1/events', { partnerId: 'ptr_1', type: 'order.created', payload: { n: 1 } }],
    ]);
    for (const request of received) {
      const authorization = String(request.headers.authorization);
      expect(authorization).toMatch(
        new RegExp(
          `^AWS4-HMAC-SHA256 Credential=${LOCAL_CREDENTIALS.accessKeyId}/\\d{8}/${LOCAL_REGION}/execute-api/aws4_request, SignedHeaders=[^,]*host[^,]*, Signature=[0-9a-f]{64}$`,
        ),
      );
      expect(
        authorization.endsWith(`Signature=${expectedSignature(request, LOCAL_CREDENTIALS.secretAccessKey)}`),
      ).toBe(true);
    }
  });

  it('names the outputs a stack lacks: not a service stack, or one of an older version', async () => {
    cloudFormation.on(DescribeStacksCommand).resolves({
      Stacks: [{ StackName: 'Data', CreationTime: new Date(), StackStatus: 'CREATE_COMPLETE', Outputs: [] }],
    });

    await expect(open()).rejects.toThrow(/has no output ApiUrl, SubscriptionsTableName/);
  });

  it('says which stack it did not find', async () => {
    cloudFormation.on(DescribeStacksCommand).rejects(
      new CloudFormationServiceException({
        name: 'ValidationError',
        $fault: 'client',
        message: `Stack with id ${STACK} does not exist`,
        $metadata: {},
      }),
    );

    await expect(open()).rejects.toThrow(new RegExp(`no stack ${STACK} here`));
  });
});
