import { isIP } from 'node:net';
import { describe, expect, it } from 'vitest';
import {
  type AddressClass,
  checkResolvedAddress,
  checkTargetUrl,
  classifyAddress,
} from '../../functions/core/target-policy.ts';

const strict = { allowPrivate: false };
const lenient = { allowPrivate: true };

describe('classifyAddress', () => {
  const table: [string, AddressClass][] = [
    // IPv4
    ['8.8.8.8', 'public'],
    ['93.184.216.34', 'public'],
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['10.0.0.1', 'private'],
    ['10.255.255.255', 'private'],
    ['100.64.0.1', 'private'],
    ['100.127.255.255', 'private'],
    ['100.128.0.1', 'public'],
    ['127.0.0.1', 'loopback'],
    ['127.255.0.9', 'loopback'],
    ['169.254.1.1', 'link-local'],
    ['169.254.169.254', 'metadata'],
    ['169.254.170.2', 'metadata'],
    ['169.254.170.23', 'metadata'],
    ['172.15.255.255', 'public'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['172.32.0.1', 'public'],
    ['192.0.0.8', 'reserved'],
    ['192.0.2.1', 'reserved'],
    ['192.168.1.1', 'private'],
    ['198.18.0.1', 'reserved'],
    ['198.19.255.255', 'reserved'],
    ['198.51.100.7', 'reserved'],
    ['203.0.113.9', 'reserved'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['240.0.0.1', 'reserved'],
    ['255.255.255.255', 'reserved'],
    // IPv6
    ['2606:4700:4700::1111', 'public'],
    ['::', 'unspecified'],
    ['::1', 'loopback'],
    ['0:0:0:0:0:0:0:1', 'loopback'],
    ['fc00::1', 'private'],
    ['fd12:3456:789a::1', 'private'],
    ['fe80::1', 'link-local'],
    ['fe80::1%eth0', 'link-local'],
    ['febf::1', 'link-local'],
    ['ff02::1', 'multicast'],
    ['fd00:ec2::254', 'metadata'],
    ['fd00:ec2::23', 'metadata'],
    ['2001:db8::1', 'reserved'],
    ['100::1', 'reserved'],
    // IPv4 inside IPv6
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['::ffff:a9fe:a9fe', 'metadata'],
    ['::ffff:10.1.2.3', 'private'],
    ['::ffff:8.8.8.8', 'public'],
    ['::127.0.0.1', 'loopback'],
    ['::a00:1', 'private'],
    ['64:ff9b::127.0.0.1', 'loopback'],
    ['64:ff9b::a9fe:a9fe', 'metadata'],
    ['64:ff9b::808:808', 'public'],
    ['64:ff9b:1::1', 'private'],
    ['2002:a00:1::1', 'private'],
    ['2002:7f00:1::1', 'loopback'],
  ];

  it.each(table)('classifies %s as %s', (ip, expected) => {
    expect(classifyAddress(ip)).toBe(expected);
  });

  it('throws for text that is not an IP address', () => {
    expect(() => classifyAddress('example.com')).toThrow(/not an IP address/);
    expect(() => classifyAddress('0177.0.0.1')).toThrow(/not an IP address/);
  });
});

/** An address as a number; written apart from the module under test, to check the tables below. */
function toBigInt(ip: string): bigint {
  if (isIP(ip) === 4) return ip.split('.').reduce((n, octet) => (n << 8n) | BigInt(octet), 0n);
  const [head = '', tail] = ip.split('::');
  const groups = (text: string): string[] => (text === '' ? [] : text.split(':'));
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const zeros = tail === undefined ? [] : new Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...zeros, ...right].reduce((n, group) => (n << 16n) | BigInt(`0x${group}`), 0n);
}

/** The first and last address of a block, as numbers. */
function bounds(block: string): [first: bigint, last: bigint] {
  const [address = '', length = ''] = block.split('/');
  const hostBits = BigInt((isIP(address) === 4 ? 32 : 128) - Number(length));
  const hostMask = (1n << hostBits) - 1n;
  const first = toBigInt(address) & ~hostMask;
  return [first, first | hostMask];
}

/** Checks that `first` and `last` are the two ends of `block`, so a typo cannot weaken a row. */
function expectEnds(block: string, first: string, last: string): void {
  const [start, end] = bounds(block);
  expect(toBigInt(block.split('/')[0] ?? ''), `${block} has no host bits set`).toBe(start);
  expect(toBigInt(first), `${first} starts ${block}`).toBe(start);
  expect(toBigInt(last), `${last} ends ${block}`).toBe(end);
}

// Every block of the IANA IPv4 and IPv6 Special-Purpose Address Registries, with the address at
// each end, plus multicast. Blocks the registry calls globally reachable are refused as reserved.
type RegistryRow = readonly [
  block: string,
  name: string,
  first: string,
  last: string,
  expected: AddressClass,
];

const IPV4_REGISTRY: RegistryRow[] = [
  ['0.0.0.0/8', 'this network', '0.0.0.0', '0.255.255.255', 'unspecified'],
  ['0.0.0.0/32', 'this host on this network', '0.0.0.0', '0.0.0.0', 'unspecified'],
  ['10.0.0.0/8', 'private use', '10.0.0.0', '10.255.255.255', 'private'],
  ['100.64.0.0/10', 'shared address space', '100.64.0.0', '100.127.255.255', 'private'],
  ['127.0.0.0/8', 'loopback', '127.0.0.0', '127.255.255.255', 'loopback'],
  ['169.254.0.0/16', 'link local', '169.254.0.0', '169.254.255.255', 'link-local'],
  ['172.16.0.0/12', 'private use', '172.16.0.0', '172.31.255.255', 'private'],
  ['192.0.0.0/24', 'IETF protocol assignments', '192.0.0.0', '192.0.0.255', 'reserved'],
  ['192.0.0.0/29', 'IPv4 service continuity prefix', '192.0.0.0', '192.0.0.7', 'reserved'],
  ['192.0.0.8/32', 'IPv4 dummy address', '192.0.0.8', '192.0.0.8', 'reserved'],
  ['192.0.0.9/32', 'PCP anycast, globally reachable', '192.0.0.9', '192.0.0.9', 'reserved'],
  ['192.0.0.10/32', 'TURN anycast, globally reachable', '192.0.0.10', '192.0.0.10', 'reserved'],
  ['192.0.0.170/32', 'NAT64/DNS64 discovery', '192.0.0.170', '192.0.0.170', 'reserved'],
  ['192.0.0.171/32', 'NAT64/DNS64 discovery', '192.0.0.171', '192.0.0.171', 'reserved'],
  ['192.0.2.0/24', 'documentation (TEST-NET-1)', '192.0.2.0', '192.0.2.255', 'reserved'],
  ['192.31.196.0/24', 'AS112-v4, globally reachable', '192.31.196.0', '192.31.196.255', 'reserved'],
  ['192.52.193.0/24', 'AMT, globally reachable', '192.52.193.0', '192.52.193.255', 'reserved'],
  ['192.88.99.0/24', 'deprecated 6to4 relay anycast', '192.88.99.0', '192.88.99.255', 'reserved'],
  ['192.88.99.2/32', '6a44 relay anycast', '192.88.99.2', '192.88.99.2', 'reserved'],
  ['192.168.0.0/16', 'private use', '192.168.0.0', '192.168.255.255', 'private'],
  [
    '192.175.48.0/24',
    'Direct Delegation AS112, globally reachable',
    '192.175.48.0',
    '192.175.48.255',
    'reserved',
  ],
  ['198.18.0.0/15', 'benchmarking', '198.18.0.0', '198.19.255.255', 'reserved'],
  ['198.51.100.0/24', 'documentation (TEST-NET-2)', '198.51.100.0', '198.51.100.255', 'reserved'],
  ['203.0.113.0/24', 'documentation (TEST-NET-3)', '203.0.113.0', '203.0.113.255', 'reserved'],
  ['240.0.0.0/4', 'reserved', '240.0.0.0', '255.255.255.255', 'reserved'],
  ['255.255.255.255/32', 'limited broadcast', '255.255.255.255', '255.255.255.255', 'reserved'],
  ['224.0.0.0/4', 'multicast', '224.0.0.0', '239.255.255.255', 'multicast'],
];

const IPV6_REGISTRY: RegistryRow[] = [
  ['::1/128', 'loopback', '::1', '::1', 'loopback'],
  ['::/128', 'unspecified', '::', '::', 'unspecified'],
  ['64:ff9b:1::/48', 'local-use NAT64', '64:ff9b:1::', '64:ff9b:1:ffff:ffff:ffff:ffff:ffff', 'private'],
  ['100::/64', 'discard-only', '100::', '100::ffff:ffff:ffff:ffff', 'reserved'],
  ['100:0:0:1::/64', 'dummy IPv6 prefix', '100:0:0:1::', '100::1:ffff:ffff:ffff:ffff', 'reserved'],
  ['2001::/23', 'IETF protocol assignments', '2001::', '2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff', 'reserved'],
  ['2001::/32', 'Teredo', '2001::', '2001:0:ffff:ffff:ffff:ffff:ffff:ffff', 'reserved'],
  ['2001:1::1/128', 'PCP anycast, globally reachable', '2001:1::1', '2001:1::1', 'reserved'],
  ['2001:1::2/128', 'TURN anycast, globally reachable', '2001:1::2', '2001:1::2', 'reserved'],
  ['2001:1::3/128', 'DNS-SD SRP anycast, globally reachable', '2001:1::3', '2001:1::3', 'reserved'],
  ['2001:2::/48', 'benchmarking', '2001:2::', '2001:2:0:ffff:ffff:ffff:ffff:ffff', 'reserved'],
  ['2001:3::/32', 'AMT, globally reachable', '2001:3::', '2001:3:ffff:ffff:ffff:ffff:ffff:ffff', 'reserved'],
  [
    '2001:4:112::/48',
    'AS112-v6, globally reachable',
    '2001:4:112::',
    '2001:4:112:ffff:ffff:ffff:ffff:ffff',
    'reserved',
  ],
  ['2001:10::/28', 'deprecated ORCHID', '2001:10::', '2001:1f:ffff:ffff:ffff:ffff:ffff:ffff', 'reserved'],
  [
    '2001:20::/28',
    'ORCHIDv2, globally reachable',
    '2001:20::',
    '2001:2f:ffff:ffff:ffff:ffff:ffff:ffff',
    'reserved',
  ],
  [
    '2001:30::/28',
    'drone remote ID DETs, globally reachable',
    '2001:30::',
    '2001:3f:ffff:ffff:ffff:ffff:ffff:ffff',
    'reserved',
  ],
  ['2001:db8::/32', 'documentation', '2001:db8::', '2001:db8:ffff:ffff:ffff:ffff:ffff:ffff', 'reserved'],
  [
    '2620:4f:8000::/48',
    'Direct Delegation AS112, globally reachable',
    '2620:4f:8000::',
    '2620:4f:8000:ffff:ffff:ffff:ffff:ffff',
    'reserved',
  ],
  ['3fff::/20', 'documentation', '3fff::', '3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff', 'reserved'],
  ['5f00::/16', 'SRv6 SIDs', '5f00::', '5f00:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'reserved'],
  ['fc00::/7', 'unique local', 'fc00::', 'fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'private'],
  ['fe80::/10', 'link-local unicast', 'fe80::', 'febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'link-local'],
  ['fe80::/64', 'link-local addresses', 'fe80::', 'fe80::ffff:ffff:ffff:ffff', 'link-local'],
  ['ff00::/8', 'multicast', 'ff00::', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'multicast'],
];

// Registry blocks that carry an IPv4 address take the class of that address: both ends carry
// 0.0.0.0 (unspecified) and 255.255.255.255 (reserved).
type EmbeddingRow = readonly [
  block: string,
  name: string,
  first: string,
  last: string,
  carried: readonly [publicOne: string, privateOne: string],
];

const IPV4_EMBEDDING_REGISTRY: EmbeddingRow[] = [
  ['::ffff:0:0/96', 'IPv4-mapped', '::ffff:0:0', '::ffff:ffff:ffff', ['::ffff:8.8.8.8', '::ffff:10.0.0.1']],
  ['64:ff9b::/96', 'NAT64', '64:ff9b::', '64:ff9b::ffff:ffff', ['64:ff9b::808:808', '64:ff9b::a00:1']],
  [
    '2002::/16',
    '6to4',
    '2002::',
    '2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
    ['2002:808:808::1', '2002:a00:1::1'],
  ],
];

// The addresses right below and right above a block (null when there is none or it is special too).
type NeighbourRow = readonly [block: string, below: string | null, above: string | null];

const PUBLIC_NEIGHBOURS: NeighbourRow[] = [
  ['0.0.0.0/8', null, '1.0.0.0'],
  ['10.0.0.0/8', '9.255.255.255', '11.0.0.0'],
  ['100.64.0.0/10', '100.63.255.255', '100.128.0.0'],
  ['127.0.0.0/8', '126.255.255.255', '128.0.0.0'],
  ['169.254.0.0/16', '169.253.255.255', '169.255.0.0'],
  ['172.16.0.0/12', '172.15.255.255', '172.32.0.0'],
  ['192.0.0.0/24', '191.255.255.255', '192.0.1.0'],
  ['192.0.2.0/24', '192.0.1.255', '192.0.3.0'],
  ['192.31.196.0/24', '192.31.195.255', '192.31.197.0'],
  ['192.52.193.0/24', '192.52.192.255', '192.52.194.0'],
  ['192.88.99.0/24', '192.88.98.255', '192.88.100.0'],
  ['192.168.0.0/16', '192.167.255.255', '192.169.0.0'],
  ['192.175.48.0/24', '192.175.47.255', '192.175.49.0'],
  ['198.18.0.0/15', '198.17.255.255', '198.20.0.0'],
  ['198.51.100.0/24', '198.51.99.255', '198.51.101.0'],
  ['203.0.113.0/24', '203.0.112.255', '203.0.114.0'],
  ['224.0.0.0/4', '223.255.255.255', null],
  ['2001::/23', '2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff', '2001:200::'],
  ['2001:db8::/32', '2001:db7:ffff:ffff:ffff:ffff:ffff:ffff', '2001:db9::'],
  ['2002::/16', '2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff', '2003::'],
  ['2620:4f:8000::/48', '2620:4f:7fff:ffff:ffff:ffff:ffff:ffff', '2620:4f:8001::'],
  ['3fff::/20', '3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff', '3fff:1000::'],
];

describe('special-purpose address registries', () => {
  it.each([...IPV4_REGISTRY, ...IPV6_REGISTRY])(
    '%s (%s): %s … %s is %s',
    (block, _name, first, last, expected) => {
      expectEnds(block, first, last);
      expect(classifyAddress(first)).toBe(expected);
      expect(classifyAddress(last)).toBe(expected);
    },
  );

  it.each(IPV4_EMBEDDING_REGISTRY)(
    '%s (%s): %s … %s take the class of the IPv4 address they carry',
    (block, _name, first, last, [publicOne, privateOne]) => {
      expectEnds(block, first, last);
      expect(classifyAddress(first)).toBe('unspecified');
      expect(classifyAddress(last)).toBe('reserved');
      expect(classifyAddress(publicOne)).toBe('public');
      expect(classifyAddress(privateOne)).toBe('private');
    },
  );

  it.each(PUBLIC_NEIGHBOURS)('the addresses next to %s (%s, %s) stay public', (block, below, above) => {
    const [start, end] = bounds(block);
    if (below !== null) {
      expect(toBigInt(below)).toBe(start - 1n);
      expect(classifyAddress(below)).toBe('public');
    }
    if (above !== null) {
      expect(toBigInt(above)).toBe(end + 1n);
      expect(classifyAddress(above)).toBe('public');
    }
  });

  it('lists the 26 IPv4 and 25 IPv6 registry blocks once each, plus both multicast blocks and fe80::/64', () => {
    const blocks = [...IPV4_REGISTRY, ...IPV6_REGISTRY, ...IPV4_EMBEDDING_REGISTRY].map(([block]) => block);
    expect(new Set(blocks).size).toBe(blocks.length);
    expect(blocks).toHaveLength(54);
  });
});

describe('checkTargetUrl', () => {
  describe('forbidden URLs', () => {
    const forbidden: [string, RegExp][] = [
      ['http://example.com/hook', /https is required/],
      ['https://example.com:0/hook', /port 0/],
      ['https://example.com/my hook', /whitespace or a control character/],
      [' https://example.com/hook', /whitespace or a control character/],
      ['https://example.com/hook\n', /whitespace or a control character/],
      ['https://exa\tmple.com/hook', /whitespace or a control character/],
      ['https://example.com/\u0000', /whitespace or a control character/],
      ['https://example.com/\u007f', /whitespace or a control character/],
      ['ftp://example.com/hook', /scheme ftp: is not allowed/],
      ['file:///etc/passwd', /scheme file: is not allowed/],
      ['javascript:alert(1)', /scheme javascript: is not allowed/],
      ['not-a-url', /not valid/],
      ['https://user:pass@example.com/hook', /credentials/],
      ['https://user@example.com/hook', /credentials/],
      ['https://10.0.0.1/hook', /address 10.0.0.1 is private/],
      ['https://172.16.5.4/', /is private/],
      ['https://192.168.0.10/', /is private/],
      ['https://100.64.0.1/', /is private/],
      ['https://127.0.0.1/', /address 127.0.0.1 is loopback/],
      ['https://127.0.0.1./', /address 127.0.0.1 is loopback/],
      ['https://2130706433/', /address 127.0.0.1 is loopback/],
      ['https://0177.0.0.1/', /address 127.0.0.1 is loopback/],
      ['https://0x7f000001/', /address 127.0.0.1 is loopback/],
      ['https://0x7f.1/', /address 127.0.0.1 is loopback/],
      ['https://127.1/', /address 127.0.0.1 is loopback/],
      ['https://localhost/', /host localhost is loopback/],
      ['https://localhost./', /host localhost is loopback/],
      ['https://LOCALHOST:8443/', /host localhost is loopback/],
      ['https://api.localhost/', /host api.localhost is loopback/],
      ['https://169.254.1.1/', /is link-local/],
      ['https://169.254.169.254/latest/meta-data', /address 169.254.169.254 is a cloud metadata address/],
      ['https://0xa9fea9fe/', /169.254.169.254 is a cloud metadata address/],
      ['https://169.254.170.2/v2/credentials', /cloud metadata address/],
      ['https://0.0.0.0/', /address 0.0.0.0 is unspecified/],
      ['https://0/', /address 0.0.0.0 is unspecified/],
      ['https://224.0.0.1/', /is multicast/],
      ['https://255.255.255.255/', /is reserved/],
      ['https://192.0.2.1/', /is reserved/],
      ['https://198.18.0.1/', /is reserved/],
      ['https://[::1]/', /address ::1 is loopback/],
      ['https://[::]/', /address :: is unspecified/],
      ['https://[::ffff:127.0.0.1]/', /address ::ffff:7f00:1 is loopback/],
      ['https://[::ffff:a9fe:a9fe]/', /cloud metadata address/],
      ['https://[fd00:ec2::254]/latest/meta-data', /address fd00:ec2::254 is a cloud metadata address/],
      ['https://[fc00::1]/', /is private/],
      ['https://[fe80::1]/', /is link-local/],
      ['https://[ff02::1]/', /is multicast/],
      ['https://[64:ff9b::7f00:1]/', /is loopback/],
      ['https://[2001:db8::1]/', /is reserved/],
      ['https://[2620:4f:8000::1]/', /is reserved/],
      ['https://[2001:3::1]/', /is reserved/],
      ['https://[2001::1]/', /is reserved/],
      ['https://[5f00::1]/', /is reserved/],
      ['https://192.31.196.1/', /is reserved/],
      ['https://192.0.0.9/', /is reserved/],
    ];

    it.each(forbidden)('refuses %s', (url, reason) => {
      const result = checkTargetUrl(url, strict);
      expect(result.ok).toBe(false);
      expect(result.ok ? '' : result.reason).toMatch(reason);
    });
  });

  describe('allowed URLs', () => {
    it.each([
      'https://example.com/hook',
      'https://example.com:8443/hooks/orders?tenant=1',
      'https://93.184.216.34/',
      'https://[2606:4700:4700::1111]/hook',
      'https://internal.example.com/',
    ])('accepts %s', (url) => {
      const result = checkTargetUrl(url, strict);
      expect(result.ok).toBe(true);
      expect(result.ok && result.url.href).toBe(new URL(url).href);
    });

    it('ignores a fragment and returns the parsed URL with it', () => {
      const result = checkTargetUrl('https://example.com/hook#part', strict);
      expect(result.ok && result.url.hash).toBe('#part');
    });
  });

  describe('with allowPrivate (local runtime)', () => {
    it.each([
      'http://127.0.0.1:8080/',
      'http://localhost:3000/hook',
      'http://10.0.0.1/',
      'http://[::1]:9000/',
      'https://192.168.1.20/',
    ])('accepts %s', (url) => {
      expect(checkTargetUrl(url, lenient).ok).toBe(true);
    });

    it.each([
      'http://169.254.169.254/latest/meta-data',
      'http://[fd00:ec2::254]/',
      'http://[::ffff:a9fe:a9fe]/',
      'http://169.254.170.2/v2/credentials',
    ])('still refuses the metadata address in %s', (url) => {
      const result = checkTargetUrl(url, lenient);
      expect(result.ok ? '' : result.reason).toMatch(/cloud metadata address/);
    });

    it('still refuses other schemes and credentials', () => {
      expect(checkTargetUrl('ftp://127.0.0.1/', lenient).ok).toBe(false);
      expect(checkTargetUrl('http://a:b@127.0.0.1/', lenient).ok).toBe(false);
    });
  });
});

describe('checkResolvedAddress', () => {
  it('allows a public address', () => {
    expect(checkResolvedAddress('93.184.216.34', strict)).toBeNull();
    expect(checkResolvedAddress('2606:4700:4700::1111', strict)).toBeNull();
  });

  it.each([
    ['10.0.0.1', 'address 10.0.0.1 is private'],
    ['127.0.0.1', 'address 127.0.0.1 is loopback'],
    ['::1', 'address ::1 is loopback'],
    ['::ffff:192.168.0.1', 'address ::ffff:192.168.0.1 is private'],
    ['169.254.169.254', 'address 169.254.169.254 is a cloud metadata address'],
    ['fe80::1', 'address fe80::1 is link-local'],
    ['0.0.0.0', 'address 0.0.0.0 is unspecified'],
    ['2001:20::1', 'address 2001:20::1 is reserved'],
    ['192.175.48.6', 'address 192.175.48.6 is reserved'],
  ])('refuses %s', (ip, reason) => {
    expect(checkResolvedAddress(ip, strict)).toBe(reason);
  });

  it('allows a private address when private targets are allowed, but never metadata', () => {
    expect(checkResolvedAddress('127.0.0.1', lenient)).toBeNull();
    expect(checkResolvedAddress('fd00:ec2::254', lenient)).toMatch(/cloud metadata address/);
  });

  it('refuses text that is not an address', () => {
    expect(checkResolvedAddress('example.com', lenient)).toBe('example.com is not an IP address');
  });
});
