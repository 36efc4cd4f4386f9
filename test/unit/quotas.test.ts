/**
 * The project's own limits against the AWS quotas they live within (functions/aws-quotas.ts,
 * each quota with its page): the core cannot import the quotas, so this holds them together.
 */
import { describe, expect, it } from 'vitest';
import { KEEP_ALIVE_TIMEOUT_MS } from '../../functions/adapters/http/callback-sender.ts';
import { MAX_REQUEST_BYTES } from '../../functions/api/handler.ts';
import { API_GATEWAY, DYNAMODB, LAMBDA, NAT_GATEWAY } from '../../functions/aws-quotas.ts';
import {
  MAX_BATCH_EVENTS,
  MAX_PAGE_BYTES,
  MAX_PAYLOAD_BYTES,
  MAX_POLL_WAIT_SECONDS,
} from '../../functions/core/events.ts';
import { EventType } from '../../functions/core/model.ts';
import { API_FUNCTION_TIMEOUT_SECONDS } from '../../lib/constructs/partner-api.ts';

describe('the project’s limits within AWS’s quotas', () => {
  it('stores the largest payload in one DynamoDB item, with room for its keys, type and times', () => {
    const idempotencyKeyBytes = 255;
    const room = DYNAMODB.maxItemBytes - MAX_PAYLOAD_BYTES;
    expect(room).toBeGreaterThan(EventType.maxLength ?? 128);
    expect(room).toBeGreaterThan(1024 + idempotencyKeyBytes);
  });

  it('answers the largest page within a synchronous Lambda response', () => {
    expect(MAX_PAGE_BYTES).toBeLessThan(LAMBDA.maxSyncResponseBytes);
    // A page keeps at least one event, however large: the largest fits too.
    expect(MAX_PAYLOAD_BYTES).toBeLessThan(MAX_PAGE_BYTES);
  });

  it('answers the longest long poll within the API function’s timeout, and that within the HTTP API’s', () => {
    expect(MAX_POLL_WAIT_SECONDS + 3).toBeLessThanOrEqual(API_FUNCTION_TIMEOUT_SECONDS);
    expect(API_FUNCTION_TIMEOUT_SECONDS).toBeLessThan(API_GATEWAY.maxIntegrationTimeoutSeconds);
  });

  it('drops idle callback connections before a NAT gateway would (fixed egress addresses)', () => {
    // A pooled connection the gateway had dropped would fail the next callback sent on it.
    expect(KEEP_ALIVE_TIMEOUT_MS).toBeLessThan(NAT_GATEWAY.idleTimeoutSeconds * 1000);
  });

  it('takes requests the HTTP API passes on', () => {
    expect(MAX_REQUEST_BYTES).toBeLessThanOrEqual(API_GATEWAY.maxPayloadBytes);
    expect(MAX_BATCH_EVENTS).toBeGreaterThan(0);
  });
});
