/** The one event shape every bench run sends, so every figure moves the same bytes. */
import { toEventView } from '../functions/core/events.ts';
import { newId } from '../functions/core/ids.ts';
import type { JsonValue } from '../functions/core/model.ts';
import { webhookHeaders } from '../functions/core/signing.ts';
import { nowMs } from './rpc.ts';

export const EVENT_TYPE = 'bench.tick';

/** A payload of about 150 bytes; `sentAt` (ms, shared clock) is what the latency run reads. */
export function benchPayload(seq: number, sentAt: number): JsonValue {
  return { seq, sentAt, orderId: `o_${seq}`, note: 'x'.repeat(96) };
}

/** A signed callback exactly as the dispatcher would send it: body and headers. */
export function signedCallback(
  seq: number,
  secret: string,
): { body: string; headers: Record<string, string> } {
  const sentAt = nowMs();
  const now = Math.floor(sentAt);
  const body = JSON.stringify(
    toEventView({
      id: newId('evt', now),
      partnerId: newId('ptr', now),
      type: EVENT_TYPE,
      payload: benchPayload(seq, sentAt),
      createdAt: new Date(now).toISOString(),
    }),
  );
  const headers = webhookHeaders({
    id: newId('dlv', now),
    timestamp: Math.floor(now / 1000),
    body,
    secrets: [secret],
  });
  return { body, headers };
}
