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
