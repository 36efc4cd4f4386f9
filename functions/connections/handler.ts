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
import { STATUS_CODES } from 'node:http';
import middy from '@middy/core';
import type { APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import * as z from 'zod';
import { problemResponse } from '../api/problem.ts';
import { bearerToken } from '../authorizer/handler.ts';
import type { Refused } from '../core/connection-protocol.ts';
import { type ConnectionEventDeps, openConnection, receiveFrame } from '../core/connections.ts';

export type ConnectionsHandlerDeps = ConnectionEventDeps;

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

/** The upgrade answered with an error instead, as problem+json. */
function refusal(refused: Refused): APIGatewayProxyStructuredResultV2 {
  return problemResponse(
    {
      type: 'about:blank',
      title: STATUS_CODES[refused.status] ?? 'Error',
      status: refused.status,
      detail: refused.detail,
    },
    refused.status === 401 ? { 'www-authenticate': 'Bearer' } : {},
  );
}

/** The header, whatever its case (API Gateway passes them as the client sent them). */
function header(headers: Record<string, string | undefined> | null | undefined, name: string) {
  const entry = Object.entries(headers ?? {}).find(([key]) => key.toLowerCase() === name);
  return entry?.[1];
}

export function createConnectionsHandler(deps: ConnectionsHandlerDeps) {
  return middy<unknown, APIGatewayProxyStructuredResultV2>().handler(async (raw) => {
    const event = WebSocketEvent.parse(raw);
    const { connectionId, routeKey } = event.requestContext;
    switch (routeKey) {
      case '$connect': {
        const refused = await openConnection(deps, {
          connectionId,
          apiKey: bearerToken(header(event.headers, 'authorization')),
          subscription: event.queryStringParameters?.subscription ?? undefined,
        });
        return refused === undefined ? OK : refusal(refused);
      }
      case '$disconnect':
        await deps.registry.close(connectionId);
        return OK;
      default:
        // A binary frame is none of the protocol's.
        await receiveFrame(
          deps,
          connectionId,
          event.isBase64Encoded === true ? undefined : (event.body ?? undefined),
        );
        return OK;
    }
  });
}

export type ConnectionsHandler = ReturnType<typeof createConnectionsHandler>;
