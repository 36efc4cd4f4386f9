import { describe, expect, it } from 'vitest';
import { type EventPattern, matchesPattern } from '../../functions/core/patterns.ts';

// The sample event of the EventBridge content-filtering docs and the aws/event-ruler README.
const ec2Event = {
  version: '0',
  id: 'ddddd4-aaaa-7777-4444-345dd43cc333',
  'detail-type': 'EC2 Instance State-change Notification',
  source: 'aws.ec2',
  account: '012345679012',
  time: '2017-10-02T16:24:49Z',
  region: 'us-east-1',
  resources: ['arn:aws:ec2:us-east-1:123456789012:instance/i-000000aaaaaa00000'],
  detail: {
    'c-count': 5,
    'd-count': 3,
    'x-limit': 301.8,
    'source-ip': '10.0.0.33',
    'instance-id': 'i-000000aaaaaa00000',
    state: 'running',
  },
};

// The docs' example for null values and empty strings.
const nullsEvent = {
  version: '0',
  id: '3e3c153a-8339-4e30-8c35-687ebef853fe',
  'detail-type': 'EC2 Instance Launch Successful',
  source: 'aws.autoscaling',
  account: '123456789012',
  time: '2015-11-11T21:31:47Z',
  region: 'us-east-1',
  resources: [],
  detail: { eventVersion: '', responseElements: null },
};

interface Case {
  name: string;
  pattern: EventPattern;
  event?: unknown;
  matches: boolean;
}

describe('matchesPattern', () => {
  const cases: Record<string, Case[]> = {
    'exact values': [
      {
        name: 'matches when every field has one of its values',
        pattern: {
          'detail-type': ['EC2 Instance State-change Notification'],
          detail: { state: ['initializing', 'running'] },
        },
        matches: true,
      },
      {
        name: 'fails when one field has none',
        pattern: { source: ['aws.ec2'], region: ['eu-west-1'] },
        matches: false,
      },
      { name: 'is case-sensitive', pattern: { source: ['AWS.EC2'] }, matches: false },
      { name: 'matches a number', pattern: { detail: { 'c-count': [5] } }, matches: true },
      {
        name: 'matches a number written differently',
        pattern: { detail: { 'x-limit': [3.018e2] } },
        matches: true,
      },
      {
        name: 'does not match a number against its string',
        pattern: { detail: { 'c-count': ['5'] } },
        matches: false,
      },
      { name: 'fails for a field the event lacks', pattern: { detail: { missing: ['x'] } }, matches: false },
      {
        name: 'fails for a nested field the event lacks entirely',
        pattern: { nope: { a: ['x'] } },
        matches: false,
      },
      { name: 'matches everything with an empty pattern', pattern: {}, matches: true },
      {
        name: 'matches booleans by value',
        pattern: { detail: { ok: [true] } },
        event: { detail: { ok: true } },
        matches: true,
      },
      {
        name: 'does not match the boolean true against the string "true"',
        pattern: { detail: { ok: ['true'] } },
        event: { detail: { ok: true } },
        matches: false,
      },
    ],
    'null and empty values': [
      {
        name: 'matches an empty string',
        pattern: { detail: { eventVersion: [''] } },
        event: nullsEvent,
        matches: true,
      },
      {
        name: 'matches null',
        pattern: { detail: { responseElements: [null] } },
        event: nullsEvent,
        matches: true,
      },
      {
        name: 'does not match null with an empty string',
        pattern: { detail: { responseElements: [''] } },
        event: nullsEvent,
        matches: false,
      },
      {
        name: 'does not match an empty string with null',
        pattern: { detail: { eventVersion: [null] } },
        event: nullsEvent,
        matches: false,
      },
    ],
    arrays: [
      {
        name: 'matches when the pattern and the event array intersect',
        pattern: {
          resources: [
            'arn:aws:ec2:us-east-1:111122223333:instance/i-b188560f',
            'arn:aws:ec2:us-east-1:123456789012:instance/i-000000aaaaaa00000',
          ],
        },
        matches: true,
      },
      {
        name: 'fails when they do not intersect',
        pattern: { resources: ['arn:aws:ec2:us-east-1:111122223333:instance/i-b188560f'] },
        matches: false,
      },
      {
        name: 'looks inside arrays of objects',
        pattern: { employees: { firstName: ['Anna'] } },
        event: { employees: [{ firstName: 'John' }, { firstName: 'Anna' }] },
        matches: true,
      },
      {
        name: 'looks inside arrays of arrays',
        pattern: { employees: { firstName: ['Peter'] } },
        event: { employees: [[{ firstName: 'John' }], [{ firstName: 'Peter', lastName: 'Jones' }]] },
        matches: true,
      },
      {
        name: 'does not combine fields from different elements of one array',
        pattern: { employees: { firstName: ['Anna'], lastName: ['Jones'] } },
        event: {
          employees: [
            { firstName: 'Anna', lastName: 'Smith' },
            { firstName: 'Peter', lastName: 'Jones' },
          ],
        },
        matches: false,
      },
      {
        name: 'applies a content filter to each element of a value array',
        pattern: { d: { vals: [{ numeric: ['>', 0, '<', 10] }] } },
        event: { d: { vals: [100, 5, 200] } },
        matches: true,
      },
      {
        name: 'treats an empty array as no value',
        pattern: { resources: [''] },
        event: nullsEvent,
        matches: false,
      },
    ],
    prefix: [
      { name: 'matches a prefix', pattern: { time: [{ prefix: '2017-10-02' }] }, matches: true },
      { name: 'fails for another prefix', pattern: { time: [{ prefix: '2017-10-03' }] }, matches: false },
      {
        name: 'only applies to strings',
        pattern: { detail: { 'c-count': [{ prefix: '5' }] } },
        matches: false,
      },
      {
        name: 'ignores case with equals-ignore-case',
        pattern: { detail: { service: [{ prefix: { 'equals-ignore-case': 'EventB' } }] } },
        event: { detail: { service: 'eventbridge' } },
        matches: true,
      },
    ],
    suffix: [
      {
        name: 'matches a suffix',
        pattern: { FileName: [{ suffix: '.png' }] },
        event: { FileName: 'image.png' },
        matches: true,
      },
      {
        name: 'is case-sensitive',
        pattern: { FileName: [{ suffix: '.png' }] },
        event: { FileName: 'image.PNG' },
        matches: false,
      },
      {
        name: 'ignores case with equals-ignore-case',
        pattern: { FileName: [{ suffix: { 'equals-ignore-case': '.png' } }] },
        event: { FileName: 'image.PNG' },
        matches: true,
      },
    ],
    'equals-ignore-case': [
      {
        name: 'matches regardless of case',
        pattern: { source: [{ 'equals-ignore-case': 'AWS.EC2' }] },
        matches: true,
      },
      {
        name: 'still needs the same letters',
        pattern: { source: [{ 'equals-ignore-case': 'aws.ec' }] },
        matches: false,
      },
    ],
    wildcard: [
      {
        name: 'matches any run of characters at a *',
        pattern: { source: [{ wildcard: 'Simple*Service' }] },
        event: { source: 'Simple Queue Service' },
        matches: true,
      },
      {
        name: 'lets * match nothing',
        pattern: { source: [{ wildcard: 'Simple*Service' }] },
        event: { source: 'SimpleService' },
        matches: true,
      },
      {
        name: 'anchors both ends',
        pattern: { source: [{ wildcard: 'Simple*Service' }] },
        event: { source: 'A Simple Queue Service!' },
        matches: false,
      },
      {
        name: 'matches a path containing a directory',
        pattern: { FilePath: [{ wildcard: '*/lib/*' }] },
        event: { FilePath: 'dir/lib/file.ts' },
        matches: true,
      },
      {
        name: 'treats \\* as a literal asterisk',
        pattern: { v: [{ wildcard: 'a\\*b' }] },
        event: { v: 'a*b' },
        matches: true,
      },
      {
        name: 'does not let \\* match other characters',
        pattern: { v: [{ wildcard: 'a\\*b' }] },
        event: { v: 'axb' },
        matches: false,
      },
      {
        name: 'treats regular-expression characters literally',
        pattern: { v: [{ wildcard: 'a.c' }] },
        event: { v: 'abc' },
        matches: false,
      },
    ],
    'anything-but': [
      {
        name: 'matches another string',
        pattern: { detail: { state: [{ 'anything-but': 'initializing' }] } },
        matches: true,
      },
      {
        name: 'fails for that string',
        pattern: { detail: { state: [{ 'anything-but': 'running' }] } },
        matches: false,
      },
      {
        name: 'matches another number',
        pattern: { detail: { 'x-limit': [{ 'anything-but': 123 }] } },
        matches: true,
      },
      {
        name: 'fails for a listed string',
        pattern: { detail: { state: [{ 'anything-but': ['stopped', 'running'] }] } },
        matches: false,
      },
      {
        name: 'matches outside a list of numbers',
        pattern: { detail: { 'x-limit': [{ 'anything-but': [100, 200, 300] }] } },
        matches: true,
      },
      {
        name: 'fails inside a list of numbers',
        pattern: { detail: { 'c-count': [{ 'anything-but': [1, 5] }] } },
        matches: false,
      },
      {
        name: 'matches without the prefix',
        pattern: { detail: { state: [{ 'anything-but': { prefix: 'init' } }] } },
        matches: true,
      },
      {
        name: 'fails with the prefix',
        pattern: { region: [{ 'anything-but': { prefix: 'us-' } }] },
        matches: false,
      },
      {
        name: 'fails with the suffix',
        pattern: { FileName: [{ 'anything-but': { suffix: '.png' } }] },
        event: { FileName: 'a.png' },
        matches: false,
      },
      {
        name: 'fails for any casing of an ignore-case value',
        pattern: {
          detail: { state: [{ 'anything-but': { 'equals-ignore-case': ['Stopped', 'RUNNING'] } }] },
        },
        matches: false,
      },
      {
        name: 'fails for a wildcard match',
        pattern: { FilePath: [{ 'anything-but': { wildcard: '*/lib/*' } }] },
        event: { FilePath: 'dir/lib/file.ts' },
        matches: false,
      },
      {
        name: 'does not match an absent field',
        pattern: { detail: { missing: [{ 'anything-but': 'x' }] } },
        matches: false,
      },
      {
        name: 'matches when any element of an event array is not excluded',
        pattern: { d: { tags: [{ 'anything-but': 'banned' }] } },
        event: { d: { tags: ['banned', 'ok'] } },
        matches: true,
      },
    ],
    numeric: [
      {
        name: 'matches within a range',
        pattern: {
          detail: {
            'c-count': [{ numeric: ['>', 0, '<=', 5] }],
            'd-count': [{ numeric: ['<', 10] }],
            'x-limit': [{ numeric: ['=', 3.018e2] }],
          },
        },
        matches: true,
      },
      {
        name: 'fails outside it',
        pattern: { detail: { 'c-count': [{ numeric: ['>', 5] }] } },
        matches: false,
      },
      {
        name: 'includes the bound with >=',
        pattern: { detail: { 'c-count': [{ numeric: ['>=', 5] }] } },
        matches: true,
      },
      {
        name: 'only applies to JSON numbers',
        pattern: { n: [{ numeric: ['>', 0] }] },
        event: { n: '5' },
        matches: false,
      },
    ],
    exists: [
      {
        name: 'matches a present field',
        pattern: { detail: { 'c-count': [{ exists: true }] } },
        matches: true,
      },
      {
        name: 'fails for an absent field',
        pattern: { detail: { 'e-count': [{ exists: true }] } },
        matches: false,
      },
      {
        name: 'exists:false matches an absent field',
        pattern: { detail: { 'e-count': [{ exists: false }] } },
        matches: true,
      },
      {
        name: 'exists:false fails for a present field',
        pattern: { detail: { 'c-count': [{ exists: false }] } },
        matches: false,
      },
      {
        name: 'exists:false matches when the parent object is absent too',
        pattern: { other: { 'c-count': [{ exists: false }] } },
        matches: true,
      },
      {
        name: 'exists:true matches a null value',
        pattern: { detail: { responseElements: [{ exists: true }] } },
        event: nullsEvent,
        matches: true,
      },
      {
        name: 'exists:false matches a field that holds an object, since only leaves exist',
        pattern: { detail: { 'c-count': [{ exists: false }] } },
        event: { detail: { state: 'running', 'c-count': { c1: 100 } } },
        matches: true,
      },
      {
        name: 'exists:true fails on an empty array',
        pattern: { d: { name: [{ exists: true }] } },
        event: { d: { name: [] } },
        matches: false,
      },
      {
        name: 'exists:false applies within one element of an array of objects',
        pattern: { d: { a: [{ exists: true }], b: [{ exists: false }] } },
        event: { d: [{ a: 1 }] },
        matches: true,
      },
    ],
    $or: [
      {
        name: 'matches when one alternative matches',
        pattern: {
          source: ['aws.ec2'],
          $or: [{ detail: { state: ['stopped'] } }, { detail: { 'c-count': [{ numeric: ['>', 1] }] } }],
        },
        matches: true,
      },
      {
        name: 'fails when no alternative matches',
        pattern: { $or: [{ region: ['eu-west-1'] }, { account: ['111111111111'] }] },
        matches: false,
      },
      {
        name: 'still needs the other keys',
        pattern: { source: ['aws.s3'], $or: [{ region: ['us-east-1'] }, { account: ['111111111111'] }] },
        matches: false,
      },
      {
        name: 'works nested, and in parallel with another $or',
        pattern: {
          $or: [{ region: ['eu-west-1'] }, { 'detail-type': ['EC2 Instance State-change Notification'] }],
          detail: { $or: [{ state: ['running'] }, { 'instance-id': ['i-other'] }] },
        },
        matches: true,
      },
      {
        name: 'nests an and inside an or',
        pattern: {
          $or: [
            { source: ['aws.s3'] },
            {
              source: ['aws.ec2'],
              detail: { state: ['running'], $or: [{ 'c-count': [1] }, { 'd-count': [3] }] },
            },
          ],
        },
        matches: true,
      },
    ],
  };

  for (const [filter, table] of Object.entries(cases)) {
    describe(filter, () => {
      it.each(table)('$name', ({ pattern, event, matches }) => {
        expect(matchesPattern(pattern, event ?? ec2Event)).toBe(matches);
      });
    });
  }

  describe('malformed patterns', () => {
    it('throws for a content filter it does not implement, instead of never matching', () => {
      const pattern = JSON.parse('{"detail":{"source-ip":[{"cidr":"10.0.0.0/24"}]}}') as EventPattern;
      expect(() => matchesPattern(pattern, ec2Event)).toThrow(/unsupported content filter cidr/);
    });

    it('throws for a numeric filter with a bad operator', () => {
      const pattern = JSON.parse('{"detail":{"c-count":[{"numeric":["!=",5]}]}}') as EventPattern;
      expect(() => matchesPattern(pattern, ec2Event)).toThrow(/numeric has a bad pair/);
    });

    it('throws for a field that is neither a list nor a pattern', () => {
      const pattern = JSON.parse('{"source":"aws.ec2"}') as EventPattern;
      expect(() => matchesPattern(pattern, ec2Event)).toThrow(/list of values or a nested pattern/);
    });
  });

  it('treats a non-object event as having no fields', () => {
    expect(matchesPattern({ source: [{ exists: false }] }, 'text')).toBe(true);
    expect(matchesPattern({ source: ['x'] }, null)).toBe(false);
  });
});
