/**
 * The connections function: API Gateway's WebSocket API routes for connection subscriptions
 * (docs/connection-protocol.md), one invocation per event of a connection.
 * - `$connect`: the upgrade, admitted or refused (401, 404, 429) before it is accepted, as
 *   the local server does; an admitted connection is registered, not yet ready.
 * - `$default`: a frame. The connection's first frame (the agent pings at once) makes it
 *   ready: `hello` goes first, then the tries parked for its subscriptions are queued. A
 *   `ping` is answered `pong`; an `ack` or a `nack` is kept for the dispatcher waiting on it.
 *   Frames that are not the protocol's are ignored.
 * - `$disconnect`: the connection is forgotten.
 */
import middy from '@middy/core';
import type { APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import * as z from 'zod';
import { bearerToken } from '../authorizer/handler.ts';
import {
  admitConnection,
  HEARTBEAT_SECONDS,
  helloFrame,
  parseClientFrame,
  pongFrame,
  type Refused,
} from '../core/connection-protocol.ts';
import { hashApiKey } from '../core/partners.ts';
import type {
  Clock,
  ConnectionRegistry,
  ConnectionSender,
  ParkedTries,
  PartnerStore,
  RegisteredConnection,
  SubscriptionStore,
} from '../core/ports.ts';

export interface ConnectionsHandlerDeps {
  partners: PartnerStore;
  subscriptions: SubscriptionStore;
  clock: Clock;
  registry: ConnectionRegistry;
  sender: ConnectionSender;
  parked: ParkedTries;
  /** Seconds an agent has to answer a delivery: the delivery timeout, rounded down. */
  ackTimeoutSeconds: number;
  /** @default HEARTBEAT_SECONDS */
  heartbeatSeconds?: number;
  /** @default RELEASE_PER_PING */
  releasePerPing?: number;
  log: (message: string, error?: unknown) => void;
}

/** What the handler reads of API Gateway's WebSocket event. */
const WebSocketEvent = z.object({
  requestContext: z.object({
    routeKey: z.string(),
    connectionId: z.string().min(1),
  }),
  headers: z.record(z.string(), z.string().optional()).nullish(),
  queryStringParameters: z.record(z.string(), z.string().optional()).nullish(),
  body: z.string().nullish(),
  isBase64Encoded: z.boolean().optional(),
});

const OK: APIGatewayProxyStructuredResultV2 = { statusCode: 200 };

/**
 * Parked tries queued at each ping of a connection, all its subscriptions together, until none
 * is left: with a ping every 30 s, about 17 a second per connection.
 */
export const RELEASE_PER_PING = 500;

/** The upgrade answered with an error instead, as problem+json. */
function refusal(refused: Refused): APIGatewayProxyStructuredResultV2 {
  return {
    statusCode: refused.status,
    headers: {
      'content-type': 'application/problem+json',
      ...(refused.status === 401 ? { 'www-authenticate': 'Bearer' } : {}),
    },
    body: JSON.stringify({
      type: 'about:blank',
      title: TITLES[refused.status],
      status: refused.status,
      detail: refused.detail,
    }),
  };
}

const TITLES: Readonly<Record<number, string>> = {
  401: 'Unauthorized',
  404: 'Not Found',
  429: 'Too Many Requests',
};

/** The header, whatever its case (API Gateway passes them as the client sent them). */
function header(headers: Record<string, string | undefined> | null | undefined, name: string) {
  const entry = Object.entries(headers ?? {}).find(([key]) => key.toLowerCase() === name);
  return entry?.[1];
}

export function createConnectionsHandler(deps: ConnectionsHandlerDeps) {
  const heartbeatSeconds = deps.heartbeatSeconds ?? HEARTBEAT_SECONDS;

  /** Whether the key the connection was opened with is still one of its partner's. */
  async function keyLive(connection: RegisteredConnection): Promise<boolean> {
    const key = await deps.partners.findApiKey(connection.keyHash);
    return key !== undefined && key.id === connection.keyId && key.partnerId === connection.partnerId;
  }

  async function connect(event: z.infer<typeof WebSocketEvent>): Promise<APIGatewayProxyStructuredResultV2> {
    const connectionId = event.requestContext.connectionId;
    const apiKey = bearerToken(header(event.headers, 'authorization'));
    const admitted = await admitConnection(deps, {
      apiKey,
      subscription: event.queryStringParameters?.subscription,
      openConnections: (partnerId) => deps.registry.count(partnerId),
    });
    if ('status' in admitted) return refusal(admitted);
    const connection: RegisteredConnection = {
      connectionId,
      partnerId: admitted.partnerId,
      keyId: admitted.keyId,
      keyHash: hashApiKey(apiKey ?? ''),
      ...(admitted.subscriptionId === undefined ? {} : { subscriptionId: admitted.subscriptionId }),
      subscriptions: admitted.subscriptions,
      ready: false,
      releasing: false,
    };
    await deps.registry.open(connection, deps.clock.now());
    // A key revoked since it was checked: the revocation closed the connections it found,
    // which this one may not have been among yet.
    if (!(await keyLive(connection))) {
      await deps.registry.close(connectionId);
      return refusal({ status: 401, detail: 'the API key was revoked' });
    }
    return OK;
  }

  async function frame(event: z.infer<typeof WebSocketEvent>): Promise<APIGatewayProxyStructuredResultV2> {
    const connectionId = event.requestContext.connectionId;
    const text = event.isBase64Encoded === true ? undefined : event.body;
    const parsed = text === undefined || text === null ? undefined : parseClientFrame(text);
    // Not a frame of the protocol (binary, too large, a newer client's): ignored.
    if (parsed === undefined) return OK;
    if (parsed.type !== 'ping') {
      // Read only by the dispatcher that sent this connection that try.
      const { type, deliveryId, attempt } = parsed;
      await deps.registry.answer(
        connectionId,
        type === 'ack'
          ? { type, deliveryId, attempt, status: parsed.status }
          : {
              type,
              deliveryId,
              attempt,
              ...(parsed.status === undefined ? {} : { status: parsed.status }),
              ...(parsed.error === undefined ? {} : { error: parsed.error }),
            },
        deps.clock.now(),
      );
      return OK;
    }
    const heard = await deps.registry.heard(connectionId, deps.clock.now());
    if (heard === undefined || !(await keyLive(heard))) {
      // Forgotten (silent too long) while API Gateway kept it, or its key revoked: closed, so
      // the agent reconnects (and learns of a revoked key from connect-info's 401).
      await deps.sender.close(connectionId);
      if (heard !== undefined) await deps.registry.close(connectionId);
      return OK;
    }
    let connection = heard;
    if (!connection.ready) {
      // hello before any delivery: only a ready connection is sent tries.
      const greeted = await deps.sender.post(connectionId, [
        helloFrame({
          connectionId,
          subscriptions: connection.subscriptions,
          heartbeatSeconds,
          ackTimeoutSeconds: deps.ackTimeoutSeconds,
        }),
      ]);
      if (greeted !== 'sent') return OK;
      await deps.registry.ready(connection);
      connection = { ...connection, ready: true, releasing: true };
    }
    await deps.sender.post(connectionId, [pongFrame(parsed.id)]);
    if (connection.releasing) await release(connection);
    return OK;
  }

  /**
   * Queues a batch of the connection's subscriptions' parked tries, RELEASE_PER_PING in all, a
   * batch each ping until none is left: a partner back after a long absence gets its backlog at
   * a pace its agents keep up with, and a release that fails part way goes on at the next ping.
   */
  async function release(connection: RegisteredConnection): Promise<void> {
    let more = false;
    let budget = deps.releasePerPing ?? RELEASE_PER_PING;
    for (const subscriptionId of connection.subscriptions) {
      if (budget <= 0) {
        more = true;
        break;
      }
      const done = await deps.parked.release(subscriptionId, budget);
      budget -= done.released;
      more ||= done.more;
      if (done.released > 0)
        deps.log(
          `connection ${connection.connectionId}: ${done.released} waiting tries of ${subscriptionId} queued`,
        );
      if (done.unreadable > 0)
        deps.log(
          `connection ${connection.connectionId}: ${done.unreadable} parked tries of ${subscriptionId} unreadable`,
          new Error('unreadable parked tries'),
        );
    }
    if (!more) await deps.registry.released(connection);
  }

  return middy<unknown, APIGatewayProxyStructuredResultV2>().handler(async (raw) => {
    const event = WebSocketEvent.parse(raw);
    switch (event.requestContext.routeKey) {
      case '$connect':
        return connect(event);
      case '$disconnect':
        await deps.registry.close(event.requestContext.connectionId);
        return OK;
      default:
        return frame(event);
    }
  });
}

export type ConnectionsHandler = ReturnType<typeof createConnectionsHandler>;
