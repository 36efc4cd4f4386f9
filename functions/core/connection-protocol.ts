/**
 * The connection protocol (docs/connection-protocol.md), the same on both runtimes: the frames
 * the server sends and parses, what an answer means for a try, and who may open a connection.
 * The local runtime's server (local/connections.ts) and the AWS WebSocket API's function
 * (functions/connections/handler.ts, functions/adapters/aws/connections.ts) both speak it
 * through this module.
 */
import * as z from 'zod';
import { SubscriptionNotFoundError, UnauthorizedError } from './errors.ts';
import { SubscriptionId } from './model.ts';
import { authenticateApiKey } from './partners.ts';
import type {
  CallbackResult,
  Clock,
  ConnectionAnswer,
  PartnerStore,
  PushRequest,
  SubscriptionStore,
} from './ports.ts';
import { connectionSubscriptionOf } from './subscriptions.ts';

/** How often an agent pings; a connection silent for three of these is closed. */
export const HEARTBEAT_SECONDS = 30;
/** The largest frame an agent may send (an ack, a nack, a ping): larger ones close the connection. */
export const MAX_CLIENT_FRAME_BYTES = 4096;
/** Connections one partner may have open at once; one more is refused (429). */
export const MAX_CONNECTIONS_PER_PARTNER = 20;
/** Characters of a nack's `error` kept in the attempt log. */
export const MAX_NACK_ERROR_CHARS = 1000;
/**
 * The largest frame the server sends, in UTF-8 bytes. API Gateway's WebSocket API takes at
 * most 128 KB in one message ("Amazon API Gateway quotas for configuring and running a
 * WebSocket API", https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-execution-service-websocket-limits-table.html),
 * below an event's 256 KiB: a delivery whose frame would be larger goes as `delivery` without
 * its body and then `delivery-part` frames, on both runtimes alike.
 */
export const MAX_SERVER_FRAME_BYTES = 120 * 1024;
/** Room left in a `delivery-part` frame for everything but its `data`. */
const PART_OVERHEAD_BYTES = 1024;

export const ClientFrame = z.discriminatedUnion('type', [
  z.looseObject({
    type: z.literal('ack'),
    deliveryId: z.string().max(200),
    attempt: z.number().int().positive(),
    status: z.number().int().min(200).max(299),
  }),
  z.looseObject({
    type: z.literal('nack'),
    deliveryId: z.string().max(200),
    attempt: z.number().int().positive(),
    status: z.number().int().min(100).max(599).optional(),
    error: z.string().optional(),
  }),
  z.looseObject({ type: z.literal('ping'), id: z.union([z.string().max(100), z.number()]).optional() }),
]);
export type ClientFrame = z.infer<typeof ClientFrame>;

const encoder = new TextEncoder();
const utf8Length = (text: string) => encoder.encode(text).length;

/**
 * A frame an agent sent, or undefined for anything that is not one of the protocol's (binary,
 * too large, not JSON, a type or field this server does not know): such frames are ignored.
 */
export function parseClientFrame(text: string): ClientFrame | undefined {
  if (utf8Length(text) > MAX_CLIENT_FRAME_BYTES) return undefined;
  try {
    const parsed = ClientFrame.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/**
 * What an ack or a nack says of a try, as an HTTP try's result: an ack is its 2xx; a nack is
 * always a failure, with the receiver's status when it is not a 2xx, else as a refusal.
 */
export function answerOf(answer: ConnectionAnswer, durationMs: number): CallbackResult {
  if (answer.type === 'ack') return { statusCode: answer.status, durationMs };
  const error = answer.error?.slice(0, MAX_NACK_ERROR_CHARS);
  if (answer.status !== undefined && (answer.status < 200 || answer.status > 299)) {
    return {
      statusCode: answer.status,
      durationMs,
      ...(error === undefined ? {} : { responseExcerpt: error }),
    };
  }
  const said = answer.status === undefined ? '' : ` (a nack with status ${answer.status})`;
  return {
    error: 'connection',
    errorMessage: `${error ?? 'the agent could not deliver it'}${said}`,
    durationMs,
  };
}

/** What `hello` tells a client once its connection is open. */
export interface Hello {
  connectionId: string;
  subscriptions: readonly string[];
  heartbeatSeconds: number;
  ackTimeoutSeconds: number;
}

export function helloFrame(hello: Hello): string {
  return JSON.stringify({ type: 'hello', ...hello });
}

export function pongFrame(id: string | number | undefined): string {
  return JSON.stringify({ type: 'pong', ...(id === undefined ? {} : { id }) });
}

/**
 * The frames of one try, in order: one `delivery` frame, or, when that would be larger than
 * MAX_SERVER_FRAME_BYTES, a `delivery` frame with `bodyParts` instead of `body`, then that many
 * `delivery-part` frames whose `data`, joined in `part` order, is the body.
 */
export function deliveryFrames(request: PushRequest): string[] {
  const head = {
    type: 'delivery',
    deliveryId: request.deliveryId,
    attempt: request.attempt,
    subscriptionId: request.subscriptionId,
    headers: request.headers,
  };
  const whole = JSON.stringify({ ...head, body: request.body });
  if (utf8Length(whole) <= MAX_SERVER_FRAME_BYTES) return [whole];
  const parts = splitForFrames(request.body, MAX_SERVER_FRAME_BYTES - PART_OVERHEAD_BYTES);
  return [
    JSON.stringify({ ...head, bodyParts: parts.length }),
    ...parts.map((data, part) =>
      JSON.stringify({
        type: 'delivery-part',
        deliveryId: request.deliveryId,
        attempt: request.attempt,
        part,
        data,
      }),
    ),
  ];
}

/**
 * `text` cut into pieces each of which, as a JSON string, is at most `maxBytes` of UTF-8; a
 * surrogate pair is never cut, so each piece is well-formed text in any language.
 */
export function splitForFrames(text: string, maxBytes: number): string[] {
  const fits = (start: number, end: number) => utf8Length(JSON.stringify(text.slice(start, end))) <= maxBytes;
  const pieces: string[] = [];
  let start = 0;
  while (start < text.length) {
    // The longest piece from `start` that fits: at least one character (or pair) always does.
    let low = start + 1;
    let high = Math.min(text.length, start + maxBytes);
    while (low < high) {
      const middle = Math.ceil((low + high) / 2);
      if (fits(start, middle)) low = middle;
      else high = middle - 1;
    }
    let end = low;
    const last = text.charCodeAt(end - 1);
    if (end < text.length && last >= 0xd800 && last <= 0xdbff) end = end - 1 > start ? end - 1 : end + 1;
    pieces.push(text.slice(start, end));
    start = end;
  }
  return pieces;
}

/** Who opened a connection, and which subscriptions' deliveries it takes. */
export interface Admitted {
  partnerId: string;
  keyId: string;
  /** The one subscription it asked for; absent: every connection subscription of the partner. */
  subscriptionId: string | undefined;
  /** The ids of the subscriptions it serves (told in `hello`). */
  subscriptions: string[];
}

/** Why a connection is refused: the status its upgrade is answered with, and the detail. */
export interface Refused {
  status: 401 | 404 | 429;
  detail: string;
}

/**
 * Decides whether a connection may open, before its upgrade is accepted.
 * 1. The API key (`Authorization: Bearer`) must be a live key of a partner: else 401.
 * 2. At most MAX_CONNECTIONS_PER_PARTNER connections of the partner open: else 429.
 * 3. A `subscription` asked for must be one of the partner's connection subscriptions: else
 *    404. Without one, the connection serves them all.
 */
export async function admitConnection(
  deps: { partners: PartnerStore; subscriptions: SubscriptionStore; clock: Clock },
  request: {
    apiKey: string | undefined;
    subscription: string | undefined;
    /** How many connections the partner has open now. */
    openConnections: (partnerId: string) => Promise<number>;
  },
): Promise<Admitted | Refused> {
  let caller: { partnerId: string; keyId: string };
  try {
    if (request.apiKey === undefined) throw new UnauthorizedError('no API key');
    caller = await authenticateApiKey(deps, request.apiKey);
  } catch (error) {
    if (error instanceof UnauthorizedError)
      return { status: 401, detail: 'a valid API key is required: Authorization: Bearer <apiKey>' };
    throw error;
  }
  if ((await request.openConnections(caller.partnerId)) >= MAX_CONNECTIONS_PER_PARTNER) {
    return {
      status: 429,
      detail: `a partner may have at most ${MAX_CONNECTIONS_PER_PARTNER} connections open`,
    };
  }
  const wanted = request.subscription;
  if (wanted === undefined) {
    const all = await deps.subscriptions.listConnections(caller.partnerId);
    return { ...caller, subscriptionId: undefined, subscriptions: all.map((s) => s.id) };
  }
  const found = SubscriptionId.safeParse(wanted).success
    ? await connectionSubscriptionOf(deps, caller.partnerId, wanted).catch((error: unknown) => {
        if (error instanceof SubscriptionNotFoundError) return undefined;
        throw error;
      })
    : undefined;
  if (found === undefined)
    return { status: 404, detail: `subscription ${wanted} is not one of your connection subscriptions` };
  return { ...caller, subscriptionId: found.id, subscriptions: [found.id] };
}

/** Closes the open connections opened with one API key. */
export interface KeyConnectionCloser {
  closeKey(partnerId: string, keyId: string): void | Promise<void>;
}

/**
 * The partner store, closing the connections of each key it removes: a revoked key stops
 * receiving at once, as it stops calling the API. With `closeFailed`, a close that fails is
 * reported there and the removal still succeeds (the key is gone; a runtime that checks the key
 * at each ping closes the connection then), else it fails the removal.
 */
export function closingRevokedConnections(
  partners: PartnerStore,
  connections: KeyConnectionCloser,
  closeFailed?: (error: unknown) => void,
): PartnerStore {
  return {
    create: (partner, firstKey) => partners.create(partner, firstKey),
    get: (partnerId) => partners.get(partnerId),
    findApiKey: (hash) => partners.findApiKey(hash),
    addApiKey: (key, options) => partners.addApiKey(key, options),
    listApiKeys: (partnerId) => partners.listApiKeys(partnerId),
    async removeApiKey(partnerId, keyId, options) {
      const result = await partners.removeApiKey(partnerId, keyId, options);
      if (result === 'done') {
        try {
          await connections.closeKey(partnerId, keyId);
        } catch (error) {
          if (closeFailed === undefined) throw error;
          closeFailed(error);
        }
      }
      return result;
    },
    touchApiKey: (key, at, staleBefore) => partners.touchApiKey(key, at, staleBefore),
  };
}
