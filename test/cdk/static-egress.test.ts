/**
 * Fixed egress addresses (`-c staticEgress=true`): the dispatcher runs in a VPC whose NAT
 * gateways have Elastic IPs the stack allocates, given as an output and to the API function;
 * and without the setting, none of it exists and the templates are as they were.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { Annotations, Match } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { beforeAll, describe, expect, it } from 'vitest';
import { LAMBDA, NAT_GATEWAY, SQS_EVENT_SOURCE } from '../../functions/aws-quotas.ts';
import { LAMBDA_ENV } from '../../functions/config.ts';
import { DEFAULT_SLOW_LANE_MAX_CONCURRENCY } from '../../lib/constructs/delivery-pipeline.ts';
import {
  EGRESS_AVAILABILITY_ZONES,
  EgressNetwork,
  hyperplaneInterfacesAtMost,
  PRIVATE_SUBNET_MASK,
  usableAddresses,
} from '../../lib/constructs/egress-network.ts';
import {
  acknowledgements,
  getAtt,
  logicalIdOf,
  propertiesOf,
  ref,
  resourcesOfType,
  type Synthesized,
  synthesize,
} from './fixture.ts';

let on: Synthesized;
let off: Synthesized;
beforeAll(() => {
  // As `cdk synth -c staticEgress=true` builds it: bundled, and checked by CloudFormation validation.
  on = synthesize({ full: true, context: { staticEgress: 'true' } });
  off = synthesize();
}, 180_000);

function egress(): EgressNetwork {
  const network = on.stacks.service.egress;
  if (network === undefined) throw new Error('no egress network with staticEgress=true');
  return network;
}

type Resources = Record<string, { Type: string; Properties?: Record<string, unknown>; DependsOn?: unknown }>;

function resourcesOf(synth: Synthesized): Resources {
  return synth.service.toJSON().Resources as Resources;
}

/** A token of the service stack as the template writes it (`{Ref}`, `{Fn::GetAtt}`…). */
function resolved(token: string): unknown {
  return on.stacks.service.resolve(token);
}

/** The subnets of the VPC, public or private, each with its logical id, zone and route table. */
function subnets(kind: 'public' | 'private') {
  const network = egress();
  const list = kind === 'public' ? network.vpc.publicSubnets : network.vpc.privateSubnets;
  return list.map((subnet) => {
    const resource = subnet.node.findChild('Subnet');
    return {
      id: logicalIdOf(resource),
      zone: JSON.stringify(propertiesOf(on.service, resource).AvailabilityZone),
      properties: propertiesOf(on.service, resource),
      subnetId: resolved(subnet.subnetId),
      routeTable: resolved(subnet.routeTable.routeTableId),
    };
  });
}

const EIP_LIST = () => ({
  'Fn::Join': [',', egress().addresses.map((address) => getAtt(address, 'PublicIp'))],
});

describe('with staticEgress=true', () => {
  it('builds a VPC in two zones, each with a public and a private subnet', () => {
    on.service.resourceCountIs('AWS::EC2::VPC', 1);
    on.service.resourceCountIs('AWS::EC2::Subnet', 2 * EGRESS_AVAILABILITY_ZONES);
    const publics = subnets('public');
    const privates = subnets('private');
    expect(publics).toHaveLength(EGRESS_AVAILABILITY_ZONES);
    expect(privates).toHaveLength(EGRESS_AVAILABILITY_ZONES);
    expect(new Set(privates.map((s) => s.zone)).size).toBe(EGRESS_AVAILABILITY_ZONES);
    expect(new Set(publics.map((s) => s.zone))).toEqual(new Set(privates.map((s) => s.zone)));
    for (const subnet of publics) expect(subnet.properties.MapPublicIpOnLaunch, subnet.id).toBe(false);
    for (const subnet of privates) {
      expect(subnet.properties.CidrBlock, subnet.id).toMatch(new RegExp(`/${PRIVATE_SUBNET_MASK}$`));
    }
  });

  it('gives each zone a NAT gateway with an Elastic IP of its own, allocated by the stack', () => {
    const gateways = resourcesOfType(on.service, 'AWS::EC2::NatGateway');
    expect(gateways).toHaveLength(EGRESS_AVAILABILITY_ZONES);
    on.service.resourceCountIs('AWS::EC2::EIP', EGRESS_AVAILABILITY_ZONES);
    on.service.allResourcesProperties('AWS::EC2::EIP', { Domain: 'vpc' });
    const allocations = gateways.map(([, properties]) => JSON.stringify(properties.AllocationId)).sort();
    expect(allocations).toEqual(
      egress()
        .addresses.map((address) => JSON.stringify(getAtt(address, 'AllocationId')))
        .sort(),
    );
    const publicSubnets = new Set(subnets('public').map((s) => s.id));
    const homes = gateways.map(([, properties]) => (properties.SubnetId as { Ref: string }).Ref);
    expect(new Set(homes).size).toBe(EGRESS_AVAILABILITY_ZONES);
    for (const home of homes) expect(publicSubnets.has(home)).toBe(true);
  });

  it('routes each private subnet to the NAT gateway of its own zone, so no traffic crosses zones', () => {
    const gateways = new Map(
      resourcesOfType(on.service, 'AWS::EC2::NatGateway').map(([id, properties]) => {
        const subnet = (properties.SubnetId as { Ref: string }).Ref;
        return [id, subnets('public').find((s) => s.id === subnet)?.zone];
      }),
    );
    const routes = resourcesOfType(on.service, 'AWS::EC2::Route');
    for (const subnet of subnets('private')) {
      const own = routes.filter(
        ([, route]) => JSON.stringify(route.RouteTableId) === JSON.stringify(subnet.routeTable),
      );
      expect(own, subnet.id).toHaveLength(1);
      const [[, route] = ['', {}]] = own;
      expect(route.DestinationCidrBlock).toBe('0.0.0.0/0');
      const gateway = (route.NatGatewayId as { Ref: string }).Ref;
      expect(gateways.get(gateway), subnet.id).toBe(subnet.zone);
    }
  });

  it('runs the dispatcher (both lanes) in the private subnets, with a security group that admits nothing', () => {
    const { dispatcherFunction } = on.stacks.service.pipeline;
    const vpcConfig = propertiesOf(on.service, dispatcherFunction).VpcConfig;
    expect(vpcConfig).toEqual({
      SubnetIds: subnets('private').map((subnet) => subnet.subnetId),
      SecurityGroupIds: [resolved(egress().securityGroup.securityGroupId)],
    });
    const group = propertiesOf(on.service, egress().securityGroup);
    expect(group.SecurityGroupIngress).toBeUndefined();
    expect(group.SecurityGroupEgress).toEqual([
      expect.objectContaining({ CidrIp: '0.0.0.0/0', IpProtocol: '-1' }),
    ]);
    on.service.resourceCountIs('AWS::EC2::SecurityGroupIngress', 0);
    const lanes = resourcesOfType(on.service, 'AWS::Lambda::EventSourceMapping').filter(
      ([, mapping]) => JSON.stringify(mapping.FunctionName) === JSON.stringify(ref(dispatcherFunction)),
    );
    expect(lanes).toHaveLength(2);
  });

  it('leaves every other function outside the VPC: none of them sends a callback', () => {
    const attached = resourcesOfType(on.service, 'AWS::Lambda::Function')
      .filter(([, properties]) => properties.VpcConfig !== undefined)
      .map(([id]) => id);
    expect(attached).toEqual([logicalIdOf(on.stacks.service.pipeline.dispatcherFunction)]);
  });

  it('keeps DynamoDB traffic off the NAT gateways, on a gateway endpoint of the private route tables', () => {
    const endpoints = resourcesOfType(on.service, 'AWS::EC2::VPCEndpoint');
    expect(endpoints).toHaveLength(1);
    const [[id, endpoint] = ['', {}]] = endpoints;
    expect(id).toBe(logicalIdOf(egress().dynamoDbEndpoint));
    expect(endpoint.VpcEndpointType).toBe('Gateway');
    expect(JSON.stringify(endpoint.ServiceName)).toContain('.dynamodb');
    expect(endpoint.RouteTableIds).toEqual(subnets('private').map((subnet) => subnet.routeTable));
  });

  it('records the traffic the VPC rejects in flow logs, kept as long as the functions’ logs', () => {
    on.service.hasResourceProperties('AWS::EC2::FlowLog', {
      ResourceType: 'VPC',
      ResourceId: ref(egress().vpc),
      TrafficType: 'REJECT',
      LogDestinationType: 'cloud-watch-logs',
      LogGroupName: ref(egress().flowLogGroup),
    });
    expect(propertiesOf(on.service, egress().flowLogGroup).RetentionInDays).toBe(30);
  });

  it('outputs the Elastic IPs, comma-separated, and gives the same list to the API function only', () => {
    expect(on.service.toJSON().Outputs?.EgressIps?.Value).toEqual(EIP_LIST());
    const { apiFunction } = on.stacks.service.api;
    const variables = (
      propertiesOf(on.service, apiFunction).Environment as { Variables: Record<string, unknown> }
    ).Variables;
    expect(variables[LAMBDA_ENV.egressIps]).toEqual(EIP_LIST());
    const others = resourcesOfType(on.service, 'AWS::Lambda::Function').filter(
      ([id, properties]) =>
        id !== logicalIdOf(apiFunction) &&
        JSON.stringify(properties.Environment ?? {}).includes(LAMBDA_ENV.egressIps),
    );
    expect(others).toEqual([]);
  });

  it('grants the dispatcher’s role what Lambda needs for its network interfaces, scoped to the network', () => {
    const role = on.stacks.service.pipeline.dispatcherFunction.role;
    if (role === undefined) throw new Error('the dispatcher has no role');
    const ec2Statements = resourcesOfType(on.service, 'AWS::IAM::Policy')
      .filter(([, policy]) => JSON.stringify(policy.Roles).includes(JSON.stringify(ref(role))))
      .flatMap(
        ([, policy]) =>
          (policy.PolicyDocument as { Statement: { Action: unknown; Resource: unknown }[] }).Statement,
      )
      .filter((statement) => [statement.Action].flat().some((action) => String(action).startsWith('ec2:')));
    const stack = on.stacks.service;
    const arn = (resource: string, name: string): unknown =>
      stack.resolve(stack.formatArn({ service: 'ec2', resource, resourceName: name }));
    const byActions = Object.fromEntries(
      ec2Statements.map((statement) => [
        [statement.Action].flat().map(String).sort().join(' '),
        [statement.Resource]
          .flat()
          .map((r) => JSON.stringify(r))
          .sort(),
      ]),
    );
    expect(byActions).toEqual({
      'ec2:CreateNetworkInterface': [
        arn('network-interface', '*'),
        ...egress().vpc.privateSubnets.map((subnet) => arn('subnet', subnet.subnetId)),
        arn('security-group', egress().securityGroup.securityGroupId),
      ]
        .map((r) => JSON.stringify(r))
        .sort(),
      'ec2:AssignPrivateIpAddresses ec2:DeleteNetworkInterface ec2:UnassignPrivateIpAddresses': [
        JSON.stringify(arn('network-interface', '*')),
      ],
      'ec2:DescribeNetworkInterfaces ec2:DescribeSubnets': ['"*"'],
    });
    // No managed policy (AWSLambdaVPCAccessExecutionRole) stands in for these grants.
    expect(propertiesOf(on.service, role).ManagedPolicyArns).toBeUndefined();
  });

  it('gives no other function’s role an EC2 action', () => {
    const dispatcherRole = on.stacks.service.pipeline.dispatcherFunction.role;
    if (dispatcherRole === undefined) throw new Error('the dispatcher has no role');
    const withEc2 = resourcesOfType(on.service, 'AWS::IAM::Policy')
      .filter(([, policy]) => JSON.stringify(policy.PolicyDocument).includes('"ec2:'))
      .map(([, policy]) => JSON.stringify(policy.Roles));
    // (CDK's own custom resource that empties the VPC's default security group has its EC2
    // actions in its role's inline policy, on that security group only.)
    expect(withEc2).toEqual([JSON.stringify([ref(dispatcherRole)])]);
  });

  it('alarms, to the alarm topic, on port allocation errors of each NAT gateway', () => {
    const alarms = resourcesOfType(on.service, 'AWS::CloudWatch::Alarm').filter(
      ([, alarm]) => alarm.MetricName === 'ErrorPortAllocation',
    );
    expect(alarms).toHaveLength(EGRESS_AVAILABILITY_ZONES);
    const gateways = resourcesOfType(on.service, 'AWS::EC2::NatGateway').map(([id]) => ({ Ref: id }));
    expect(alarms.map(([, alarm]) => (alarm.Dimensions as { Value: unknown }[])[0]?.Value)).toEqual(
      expect.arrayContaining(gateways),
    );
    const topic = ref(on.stacks.service.monitoring.topic);
    for (const [id, alarm] of alarms) {
      expect(alarm, id).toMatchObject({ Namespace: 'AWS/NATGateway', Threshold: 0, AlarmActions: [topic] });
      expect(String(alarm.AlarmDescription), id).toContain(String(NAT_GATEWAY.connectionsPerDestination));
    }
  });

  it('touches nothing else of the service stack: the dispatcher’s network and grants, the API’s addresses', () => {
    // `on` is bundled and `off` is not: their functions' code differs only in its asset hash.
    const withoutCode = (resource: Resources[string] | undefined) =>
      JSON.stringify({ ...resource?.Properties, Code: undefined, Type: resource?.Type });
    const before = resourcesOf(off);
    const after = resourcesOf(on);
    const changed = Object.keys(before).filter((id) => withoutCode(before[id]) !== withoutCode(after[id]));
    const role = on.stacks.service.pipeline.dispatcherFunction.role;
    const policy = role?.node.tryFindChild('DefaultPolicy');
    if (role === undefined || policy === undefined) throw new Error('the dispatcher has no role policy');
    expect(changed.sort()).toEqual(
      [
        logicalIdOf(on.stacks.service.pipeline.dispatcherFunction),
        logicalIdOf(policy),
        logicalIdOf(on.stacks.service.api.apiFunction),
      ].sort(),
    );
    expect(on.data.toJSON()).toEqual(off.data.toJSON());
  });
});

describe('cdk-nag with staticEgress=true', () => {
  it('reports no unacknowledged finding, and CloudFormation validation none either', () => {
    const report = new AwsSolutionsChecks().validateScope(on.app);
    expect(report.violations.map((violation) => violation.ruleName)).toEqual([]);
    const file = join(on.assembly.directory, 'validation-report.json');
    const reports: unknown = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')).pluginReports : [];
    expect(reports).toEqual([]);
    for (const stack of [on.stacks.data, on.stacks.service]) {
      expect(Annotations.fromStack(stack).findError('*', Match.anyValue())).toEqual([]);
      expect(Annotations.fromStack(stack).findWarning('*', Match.anyValue())).toEqual([]);
    }
  });

  it('acknowledges, beyond the default app’s, only the network interface grants, each with a reason', () => {
    const key = ({ path, id }: { path: string; id: string }) => `${path} ${id}`;
    const before = new Set(acknowledgements(off.app).map(key));
    const added = acknowledgements(on.app).filter((a) => !before.has(key(a)));
    const ours = added.filter((a) => a.id.startsWith('AwsSolutions-'));
    expect(ours.map(key).sort()).toEqual([
      'Delivery/DispatcherFunctionRole/DefaultPolicy/Resource AwsSolutions-IAM5[Resource::*]',
      'Delivery/DispatcherFunctionRole/DefaultPolicy/Resource AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:network-interface/*]',
    ]);
    for (const { path, reason } of ours) expect(reason.length, path).toBeGreaterThan(150);
    // The rest are CDK's own, on what the VPC and flow log constructs generate.
    expect(
      added
        .filter((a) => !a.id.startsWith('AwsSolutions-'))
        .every((a) => a.id.startsWith('CloudFormation-Validate::')),
    ).toBe(true);
  });
});

describe('the network interfaces and addresses the dispatcher can use', () => {
  it('fit a private subnet and the Lambda quota per VPC even at the highest concurrency the settings take', () => {
    const highest = SQS_EVENT_SOURCE.maxMaximumConcurrency + DEFAULT_SLOW_LANE_MAX_CONCURRENCY;
    const interfaces = hyperplaneInterfacesAtMost(highest);
    expect(interfaces).toBeLessThanOrEqual(LAMBDA.enisPerVpc);
    expect(interfaces).toBeLessThanOrEqual(usableAddresses(PRIVATE_SUBNET_MASK));
    expect(usableAddresses(PRIVATE_SUBNET_MASK)).toBe(1019);
    // At the defaults (200 + 50 environments, each holding at most 1,024 sockets): 4.
    expect(hyperplaneInterfacesAtMost(200 + DEFAULT_SLOW_LANE_MAX_CONCURRENCY)).toBe(4);
  });

  it('refuses, at synth, more environments than the subnets and the quota have interfaces for', () => {
    const stack = () => new Stack(new App({ context: { 'aws:cdk:bundling-stacks': [] } }), 'Test');
    expect(() => new EgressNetwork(stack(), 'Egress', { maxEnvironments: 20_000 })).toThrow(
      /20000 execution environments may need 316 network interfaces/,
    );
    expect(() => new EgressNetwork(stack(), 'Egress', { maxEnvironments: 1050 })).not.toThrow();
  });
});

describe('with staticEgress off (the default)', () => {
  it('has no VPC, NAT gateway, Elastic IP or endpoint, and attaches no function to a VPC', () => {
    const ec2 = Object.values(resourcesOf(off)).filter((resource) => resource.Type.startsWith('AWS::EC2::'));
    expect(ec2).toEqual([]);
    for (const [id, properties] of resourcesOfType(off.service, 'AWS::Lambda::Function')) {
      expect(properties.VpcConfig, id).toBeUndefined();
    }
    expect(off.stacks.service.egress).toBeUndefined();
  });

  it('outputs no addresses and gives the API none: GET /v1/egress-ips promises no fixed address', () => {
    expect(off.service.toJSON().Outputs?.EgressIps).toBeUndefined();
    expect(JSON.stringify(resourcesOf(off))).not.toContain(LAMBDA_ENV.egressIps);
  });

  it('builds the same templates as staticEgress=false', () => {
    const explicit = synthesize({ context: { staticEgress: 'false' } });
    expect(explicit.service.toJSON()).toEqual(off.service.toJSON());
    expect(explicit.data.toJSON()).toEqual(off.data.toJSON());
  });
});
