/**
 * The scenarios `npm run cost` prices, and the assumptions the prices rest on beyond what is
 * measured. Each scenario: one partner, one subscription that takes every event, 1 KB events,
 * and a receiver that answers every callback 204 at the first try: a URL, or (`pushed`) an
 * agent connected to the WebSocket API that acks every delivery.
 */
import type { ScenarioSpec } from './harness.ts';

/** The target: at most this much per million callbacks, in the `batched` scenario. */
export const TARGET_USD_PER_MILLION_CALLBACKS = 5;

/** Bytes of each published event's JSON ({partnerId, type, payload}): 1 KB. */
export const EVENT_BYTES = 1024;

export const SCENARIOS: readonly ScenarioSpec[] = [
  {
    name: 'batched',
    description: 'events published 100 at a time (POST /v1/events/batch)',
    events: 100,
    eventsPerRequest: 100,
    eventBytes: EVENT_BYTES,
  },
  {
    name: 'single',
    description: 'events published one at a time (POST /v1/events)',
    events: 100,
    eventsPerRequest: 1,
    eventBytes: EVENT_BYTES,
  },
  {
    name: 'pushed',
    description:
      'events published 100 at a time, pushed down a connection (a connection subscription), each acked',
    events: 100,
    eventsPerRequest: 100,
    eventBytes: EVENT_BYTES,
    transport: 'connection',
  },
  {
    name: 'ordered',
    description:
      'events published 100 at a time over 10 ordering keys, to a subscription with ordering: "key"',
    events: 100,
    eventsPerRequest: 100,
    eventBytes: EVENT_BYTES,
    orderingKeys: 10,
  },
];

/**
 * What is not measured here and has to be assumed. Lambda bills the time an invocation runs,
 * which on AWS is mostly waiting: for DynamoDB and SQS, and in the dispatcher for the partner's
 * endpoint. The run measures which requests an invocation waits for one after another (its
 * longest chain of requests, each started after the one before it was answered); each such
 * request is taken to take `awsRequestMs`, a callback `callbackMs`, and the handler's own work
 * `invocationOverheadMs` per invocation.
 */
export interface Assumptions {
  /** One DynamoDB or SQS request, as an invocation waits for it. */
  readonly awsRequestMs: number;
  /** The partner's endpoint answering a callback. */
  readonly callbackMs: number;
  /**
   * A pushed delivery's answer: from its frame leaving the dispatcher to the agent's ack
   * written by the connections function (the frame's way to the agent, the agent's own
   * callback to its receiver, the ack's way back and its invocation). Taken as a callback's:
   * the dispatcher reads for the answer after pauses of 20, 30, 50… ms (ANSWER_POLL_MS), so
   * this says how many reads a push takes, and the harness's agent answers after that many.
   */
  readonly agentAnswerMs: number;
  /** The handler's own work per invocation (parsing, signing, JSON). */
  readonly invocationOverheadMs: number;
  /** Shards of the events table's stream, each polled by the pipe whether or not it has records. */
  readonly streamShards: number;
  /** Lambda's START/END/REPORT lines per invocation, when the system log level writes them. */
  readonly platformLogBytesPerInvocation: number;
  /**
   * Bytes a callback adds on the wire to its HTTP request and response (which are measured):
   * TLS records and TCP/IP headers and acknowledgements, about 300 bytes, and a share of
   * connection set-ups: a TLS handshake is about 5 KB, mostly the receiver's certificates, and
   * the dispatcher keeps connections alive, so one callback in ten is taken to pay for one.
   * With fixed egress addresses, the NAT gateways bill every one of these bytes.
   */
  readonly callbackOverheadBytes: number;
  /**
   * Bytes a PostToConnection adds on the wire beyond its request as measured locally (the
   * SDK's request line, headers and SigV4 signature, and the frame): on Lambda the role's
   * session token (x-amz-security-token, about 1,100 bytes), and API Gateway's 200 answer,
   * about 200. Only the NAT gateways of fixed egress addresses bill these bytes.
   */
  readonly postOverheadBytes: number;
}

export const ASSUMPTIONS: Assumptions = {
  awsRequestMs: 10,
  callbackMs: 100,
  agentAnswerMs: 100,
  invocationOverheadMs: 10,
  streamShards: 1,
  platformLogBytesPerInvocation: 700,
  callbackOverheadBytes: 800,
  postOverheadBytes: 1300,
};

export function scenarioNamed(name: string): ScenarioSpec {
  const scenario = SCENARIOS.find((s) => s.name === name);
  if (scenario === undefined)
    throw new Error(`no scenario ${name}: ${SCENARIOS.map((s) => s.name).join(', ')}`);
  return scenario;
}
