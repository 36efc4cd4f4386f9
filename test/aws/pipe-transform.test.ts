import { describe, expect, it } from 'vitest';
import {
  applyPipeTransform,
  pipeAccepts,
  pipeMessageBody,
  renderInputTemplate,
  valueAtPath,
} from './pipe-transform.ts';

/** A stream record as Pipes receives it, for an item with these string attributes. */
function streamRecord(eventName: string, image: Record<string, string>): unknown {
  return {
    eventID: '1',
    eventName,
    eventVersion: '1.1',
    eventSource: 'aws:dynamodb',
    awsRegion: 'local',
    dynamodb: {
      ApproximateCreationDateTime: 1_735_689_600,
      Keys: { pk: { S: image.pk }, sk: { S: image.sk } },
      NewImage: Object.fromEntries(Object.entries(image).map(([name, value]) => [name, { S: value }])),
      SequenceNumber: '100',
      SizeBytes: 100,
      StreamViewType: 'NEW_IMAGE',
    },
  };
}

const eventImage = {
  pk: 'ptr_01JGFJJZ000000000000000000',
  sk: 'E#000000000000001',
  kind: 'event',
  id: 'evt_01JGFJJZ000000000000000001',
  partnerId: 'ptr_01JGFJJZ000000000000000000',
  type: 'order.created',
  createdAt: '2025-01-01T00:00:00.000Z',
  payload: '{"a":1}',
  ordering: '',
};

/** An event item with an ordering key: its key and its place, and their text for the pipe. */
const keyedImage = {
  ...eventImage,
  sk: 'E#000000000000002',
  id: 'evt_01JGFJJZ000000000000000002',
  orderingKey: 'order#1/line:2',
  keySeq: '3',
  ordering: '3/order#1/line:2',
};

describe('pipeAccepts', () => {
  it('passes the insert of an event item', () => {
    expect(pipeAccepts(streamRecord('INSERT', eventImage))).toBe(true);
  });

  it('passes the insert of a keyed event item', () => {
    expect(pipeAccepts(streamRecord('INSERT', keyedImage))).toBe(true);
  });

  it('drops counters, pointers, modifications and TTL removals', () => {
    const partner = eventImage.pk;
    expect(pipeAccepts(streamRecord('INSERT', { pk: partner, sk: 'SEQ', kind: 'counter' }))).toBe(false);
    // An ordering key's counter has no kind at all.
    expect(pipeAccepts(streamRecord('INSERT', { pk: `${partner}#O1`, sk: 'OKEY#k', keySeq: '1' }))).toBe(
      false,
    );
    expect(pipeAccepts(streamRecord('MODIFY', { pk: `${partner}#O1`, sk: 'OKEY#k', keySeq: '2' }))).toBe(
      false,
    );
    expect(pipeAccepts(streamRecord('INSERT', { pk: partner, sk: 'ID#x', kind: 'eventId' }))).toBe(false);
    expect(pipeAccepts(streamRecord('MODIFY', eventImage))).toBe(false);
    expect(pipeAccepts({ eventName: 'REMOVE', dynamodb: { Keys: { pk: { S: partner } } } })).toBe(false);
  });
});

describe('applyPipeTransform', () => {
  it('builds the fan-out message, an EventRef, from the deployed template', () => {
    expect(applyPipeTransform(streamRecord('INSERT', eventImage))).toEqual({
      id: eventImage.id,
      partnerId: eventImage.partnerId,
      type: 'order.created',
      createdAt: '2025-01-01T00:00:00.000Z',
    });
  });

  it('sends an empty ordering for an event without a key, which the fan-out reads as neither field', () => {
    expect(JSON.parse(pipeMessageBody(streamRecord('INSERT', eventImage)))).toMatchObject({ ordering: '' });
    const ref = applyPipeTransform(streamRecord('INSERT', eventImage));
    expect(ref).not.toHaveProperty('orderingKey');
    expect(ref).not.toHaveProperty('keySeq');
  });

  it('sends a keyed event’s ordering as one text, which the fan-out reads as its key and place', () => {
    expect(JSON.parse(pipeMessageBody(streamRecord('INSERT', keyedImage)))).toEqual({
      id: keyedImage.id,
      partnerId: keyedImage.partnerId,
      type: 'order.created',
      createdAt: '2025-01-01T00:00:00.000Z',
      ordering: '3/order#1/line:2',
    });
    expect(applyPipeTransform(streamRecord('INSERT', keyedImage))).toEqual({
      id: keyedImage.id,
      partnerId: keyedImage.partnerId,
      type: 'order.created',
      createdAt: '2025-01-01T00:00:00.000Z',
      orderingKey: 'order#1/line:2',
      keySeq: 3,
    });
  });

  it('fails on a record without the template’s attributes rather than sending "undefined"', () => {
    const { type: _missing, ...withoutType } = eventImage;

    expect(() => applyPipeTransform(streamRecord('INSERT', withoutType))).toThrow(/NewImage\.type\.S/);
    const { ordering: _none, ...withoutOrdering } = eventImage;
    expect(() => applyPipeTransform(streamRecord('INSERT', withoutOrdering))).toThrow(
      /NewImage\.ordering\.S/,
    );
  });
});

describe('renderInputTemplate', () => {
  it('escapes a value placed inside a JSON string and inserts a bare one as JSON', () => {
    const record = { a: { text: 'say "hi"\n', list: [1, 'two'] } };

    const rendered = renderInputTemplate('{"text": "<$.a.text>", "list": <$.a.list>}', record);

    expect(JSON.parse(rendered)).toEqual({ text: 'say "hi"\n', list: [1, 'two'] });
  });

  it('supports dot paths only', () => {
    expect(valueAtPath({ a: { b: 1 } }, '$.a.b')).toBe(1);
    expect(valueAtPath({ a: { b: 1 } }, '$.a.c')).toBeUndefined();
    expect(() => valueAtPath({ a: [1] }, '$.a[0]')).toThrow(/dot paths/);
    expect(() => valueAtPath({ a: 1 }, '$..a')).toThrow(/dot paths/);
  });
});
