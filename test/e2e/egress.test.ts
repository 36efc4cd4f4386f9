/** GET /v1/egress-ips: the addresses a partner's firewall may let callbacks in from. */
import { describe, expect, it } from 'vitest';
import { ConfigError, parseLocalConfig } from '../../functions/config.ts';
import { expectProblem, raw } from './api-support.ts';
import { startTestDispatcher } from './harness.ts';

describe('GET /v1/egress-ips', () => {
  it('promises no address by default', async () => {
    const d = await startTestDispatcher();
    try {
      const partner = await d.createPartner();
      const res = await d.as(partner.apiKey, 'GET', '/v1/egress-ips');
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ fixed: false, addresses: [] });
      expectProblem(await raw(`${d.dispatcher.url}/v1/egress-ips`, 'GET', {}), 401);
    } finally {
      await d.cleanup();
    }
  });

  it('lists the addresses the deployment declares, to partners', async () => {
    const d = await startTestDispatcher({ DISPATCHER_EGRESS_IPS: '203.0.113.7, 2001:db8::1' });
    try {
      const partner = await d.createPartner();
      const res = await d.as(partner.apiKey, 'GET', '/v1/egress-ips');
      expect(res.body).toEqual({ fixed: true, addresses: ['203.0.113.7', '2001:db8::1'] });
    } finally {
      await d.cleanup();
    }
  });

  it('refuses a setting that is not a list of addresses, naming it', () => {
    expect(() => parseLocalConfig({ DISPATCHER_EGRESS_IPS: '203.0.113.7,nat-gateway' })).toThrow(ConfigError);
    expect(() => parseLocalConfig({ DISPATCHER_EGRESS_IPS: 'x' })).toThrow(/DISPATCHER_EGRESS_IPS/);
  });
});
