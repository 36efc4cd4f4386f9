import 'aws-sdk-client-mock-vitest/extend';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { EventBridgeBus } from '../../functions/adapters/aws/bus.ts';
import { PIPE_SOURCE } from '../../functions/adapters/aws/pipe.ts';
import type { EventRef } from '../../functions/core/patterns.ts';

const eventBridge = mockClient(EventBridgeClient);

afterEach(() => {
  eventBridge.reset();
});

const bus = () => new EventBridgeBus(new EventBridgeClient({ region: 'eu-west-1' }), 'partner-events');

function ref(i: number): EventRef {
  return {
    id: `evt_01JAAAAAAAAAAAAAAAAAAAA${String(i).padStart(3, '0')}`,
    partnerId: 'ptr_01JAAAAAAAAAAAAAAAAAAAAAAA',
    type: 'order.created',
    createdAt: '2026-12-01T00:00:00.000Z',
  };
}

describe('EventBridgeBus', () => {
  it('puts events as the pipe does, ten a request: its source, the type as detail-type, an EventRef as detail', async () => {
    eventBridge.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [] });
    const refs = Array.from({ length: 23 }, (_, i) => ref(i));

    await bus().publish(refs);

    expect(eventBridge).toHaveReceivedCommandTimes(PutEventsCommand, 3);
    const first = eventBridge.commandCalls(PutEventsCommand)[0]?.args[0].input.Entries ?? [];
    expect(first).toHaveLength(10);
    expect(first[0]).toEqual({
      EventBusName: 'partner-events',
      Source: PIPE_SOURCE,
      DetailType: 'order.created',
      Detail: JSON.stringify(refs[0]),
    });
  });

  it('puts the entries EventBridge refused again, and only those', async () => {
    eventBridge
      .on(PutEventsCommand)
      .resolvesOnce({
        FailedEntryCount: 1,
        Entries: [{ EventId: 'a' }, { ErrorCode: 'ThrottlingException' }],
      })
      .resolves({ FailedEntryCount: 0, Entries: [{ EventId: 'b' }] });

    await bus().publish([ref(1), ref(2)]);

    expect(eventBridge).toHaveReceivedCommandTimes(PutEventsCommand, 2);
    const again = eventBridge.commandCalls(PutEventsCommand)[1]?.args[0].input.Entries ?? [];
    expect(again.map((e) => JSON.parse(e.Detail ?? '{}').id)).toEqual([ref(2).id]);
  });

  it('fails, saying how many, when entries are still refused after its tries', async () => {
    eventBridge
      .on(PutEventsCommand)
      .resolves({ FailedEntryCount: 1, Entries: [{ ErrorCode: 'InternalFailure' }] });

    await expect(bus().publish([ref(1)])).rejects.toThrow(/1 of 1 events could not be put on partner-events/);
    expect(eventBridge).toHaveReceivedCommandTimes(PutEventsCommand, 4);
  });
});
