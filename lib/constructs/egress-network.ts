import { Duration, Fn, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { LAMBDA, LAMBDA_VPC, NAT_GATEWAY, VPC } from '../../functions/aws-quotas.ts';

/** Availability Zones of the network, each with a private subnet and a NAT gateway of its own. */
export const EGRESS_AVAILABILITY_ZONES = 2;
/** The VPC's range; nothing is peered with it, so any private range serves. */
export const EGRESS_VPC_CIDR = '10.0.0.0/16';
/** The public subnets hold only the NAT gateways (one address each). */
export const PUBLIC_SUBNET_MASK = 24;
/**
 * The private subnets hold the Hyperplane network interfaces of the functions attached: 1,019
 * addresses each, four times the Lambda quota of interfaces in a whole VPC (LAMBDA.enisPerVpc,
 * 250), so a subnet runs out of addresses only after that quota has been raised fourfold.
 */
export const PRIVATE_SUBNET_MASK = 22;

/** Where a function attached to the network runs: the VPC, its private subnets, its security group. */
export interface FunctionNetwork {
  readonly vpc: ec2.IVpc;
  readonly vpcSubnets: ec2.SubnetSelection;
  readonly securityGroups: readonly ec2.ISecurityGroup[];
}

export interface EgressNetworkProps {
  /**
   * The most execution environments of the attached functions at once: the MaximumConcurrency
   * of their event sources, summed. The network interfaces they may need are checked against
   * the subnets and the Lambda quota with it.
   */
  readonly maxEnvironments: number;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
}

/** Addresses a subnet of this mask has for network interfaces. */
export function usableAddresses(cidrMask: number): number {
  return 2 ** (32 - cidrMask) - VPC.reservedAddressesPerSubnet;
}

/**
 * The Hyperplane interfaces `environments` execution environments can need at the very most:
 * every environment holding as many connections as it has file descriptors
 * (LAMBDA.fileDescriptors, 1,024), each interface carrying 65,000. The dispatcher holds far
 * fewer (a batch's callbacks, kept alive 4 s, and its AWS SDK connections), so the real need is
 * one interface per subnet; this bound is what no load can exceed.
 */
export function hyperplaneInterfacesAtMost(environments: number): number {
  return Math.ceil((environments * LAMBDA.fileDescriptors) / LAMBDA_VPC.connectionsPerHyperplaneEni);
}

/**
 * Fixed egress addresses: a VPC in EGRESS_AVAILABILITY_ZONES zones, each with a public subnet
 * holding a NAT gateway whose Elastic IP this construct allocates, and a private subnet whose
 * default route goes to that zone's gateway (no traffic crosses zones). A function given
 * `functionNetwork` runs in the private subnets with a security group that admits nothing and
 * lets everything out, and reaches the internet from the Elastic IPs only: partners allowlist
 * `egressIps`.
 *
 * What goes where:
 * - DynamoDB through a gateway endpoint in the private subnets' route tables: free, and the
 *   dispatcher's busiest AWS traffic (its reads and writes of every callback) stays off the NAT
 *   gateways' per-GB charge.
 * - SQS and KMS through the NAT gateways, at $0.045 per GB processed: the dispatcher sends to
 *   SQS only a retry or a dead letter (a few KB each) and asks KMS once per instance and data
 *   key. An interface endpoint costs $0.01 an hour in each zone ($14.60 a month for two) and
 *   $0.01 per GB, so one pays for itself past about 417 GB a month through it ($14.60 / $0.035),
 *   some hundred million retries: not at this traffic. (Prices: VPC_PRICES and
 *   PRIVATELINK_PRICES in functions/aws-prices.ts; docs/cost.md, "Fixed egress addresses".)
 * - CloudWatch Logs needs neither: Lambda delivers a function's logs itself, and the SQS event
 *   sources are polled by Lambda, outside the VPC.
 *
 * Flow logs record the traffic the VPC rejects (cdk-nag AwsSolutions-VPC7), which costs next to
 * nothing: nothing is meant to be rejected here. What callbacks were sent, where and how they
 * ended is in the deliveries' attempt log already; recording all traffic as well would add up to
 * about $0.40 per million callbacks of CloudWatch Logs ingestion (docs/cost.md).
 *
 * The addresses live as long as the stack: they stay the same across deployments, and a stack
 * deleted and deployed again has new ones, which partners must allowlist anew.
 */
export class EgressNetwork extends Construct {
  public readonly vpc: ec2.Vpc;
  /** The functions' security group: no inbound rule; all outbound. */
  public readonly securityGroup: ec2.SecurityGroup;
  /** One Elastic IP per NAT gateway, in the order of the zones. */
  public readonly addresses: readonly ec2.CfnEIP[];
  /** The NAT gateways, one per zone. */
  public readonly natGateways: readonly ec2.GatewayConfig[];
  public readonly dynamoDbEndpoint: ec2.GatewayVpcEndpoint;
  public readonly flowLog: ec2.FlowLog;
  public readonly flowLogGroup: logs.LogGroup;
  /** The Elastic IPs, comma-separated (resolved at deployment): DISPATCHER_EGRESS_IPS. */
  public readonly egressIps: string;
  /** What a function needs to run in the private subnets with the security group. */
  public readonly functionNetwork: FunctionNetwork;

  constructor(scope: Construct, id: string, props: EgressNetworkProps) {
    super(scope, id);
    checkCapacity(id, props.maxEnvironments);

    this.addresses = Array.from(
      { length: EGRESS_AVAILABILITY_ZONES },
      (_, i) =>
        new ec2.CfnEIP(this, `Address${i + 1}`, {
          domain: 'vpc',
          tags: [{ key: 'Name', value: `${Stack.of(this).stackName}-egress-${i + 1}` }],
        }),
    );
    const nat = ec2.NatProvider.gateway({
      eipAllocationIds: this.addresses.map((address) => address.attrAllocationId),
    });
    const privateSubnets: ec2.SubnetSelection = { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS };
    this.vpc = new ec2.Vpc(this, 'Vpc', {
      ipAddresses: ec2.IpAddresses.cidr(EGRESS_VPC_CIDR),
      maxAzs: EGRESS_AVAILABILITY_ZONES,
      natGateways: EGRESS_AVAILABILITY_ZONES,
      natGatewayProvider: nat,
      subnetConfiguration: [
        {
          name: 'Public',
          subnetType: ec2.SubnetType.PUBLIC,
          cidrMask: PUBLIC_SUBNET_MASK,
          // Only the NAT gateways live here, with their Elastic IPs.
          mapPublicIpOnLaunch: false,
        },
        { name: 'Private', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: PRIVATE_SUBNET_MASK },
      ],
      gatewayEndpoints: {
        DynamoDb: { service: ec2.GatewayVpcEndpointAwsService.DYNAMODB, subnets: [privateSubnets] },
      },
      // Nothing uses the default security group: it is emptied of rules.
      restrictDefaultSecurityGroup: true,
    });
    this.natGateways = nat.configuredGateways;
    const endpoint = this.vpc.node.tryFindChild('DynamoDb');
    if (!(endpoint instanceof ec2.GatewayVpcEndpoint)) throw new Error(`${id}: no DynamoDB gateway endpoint`);
    this.dynamoDbEndpoint = endpoint;

    this.flowLogGroup = new logs.LogGroup(this, 'FlowLogGroup', {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
    });
    this.flowLog = new ec2.FlowLog(this, 'FlowLog', {
      resourceType: ec2.FlowLogResourceType.fromVpc(this.vpc),
      trafficType: ec2.FlowLogTrafficType.REJECT,
      destination: ec2.FlowLogDestination.toCloudWatchLogs(this.flowLogGroup),
    });

    this.securityGroup = new ec2.SecurityGroup(this, 'FunctionSecurityGroup', {
      vpc: this.vpc,
      description:
        'Functions that send callbacks: nothing inbound; out to partners through the NAT gateways, to AWS APIs',
      // Callback URLs may name any port; where they may go is the target policy's to decide,
      // on every address a host resolves to (functions/core/target-policy.ts).
      allowAllOutbound: true,
    });
    this.functionNetwork = {
      vpc: this.vpc,
      vpcSubnets: privateSubnets,
      securityGroups: [this.securityGroup],
    };
    this.egressIps = Fn.join(
      ',',
      this.addresses.map((address) => address.attrPublicIp),
    );
  }

  /**
   * Alarms on each NAT gateway's port allocation errors, to `topic`: connections to one
   * destination beyond NAT_GATEWAY.connectionsPerDestination (55,000 at once, or about 900 new
   * ones a second) fail, and the callbacks they carried are retried. The dispatcher keeps its
   * connections alive, so only a partner that closes every connection and takes more than 900
   * callbacks a second through one gateway comes near it.
   */
  public alarmOnPortAllocation(topic: sns.ITopic, namePrefix: string): cloudwatch.Alarm[] {
    const notify = new actions.SnsAction(topic);
    return this.natGateways.map((gateway, i) => {
      const alarm = new cloudwatch.Alarm(this, `PortAllocationErrors${i + 1}`, {
        alarmName: `${namePrefix}-nat-port-allocation-${i + 1}`,
        alarmDescription:
          `NAT gateway ${i + 1} could not open connections: more than ${NAT_GATEWAY.connectionsPerDestination} ` +
          `at once (or about ${NAT_GATEWAY.newConnectionsPerSecondPerDestination} new ones a second) to one ` +
          "destination. The callbacks are retried. Find the partner in the dispatcher's connection errors; " +
          'if it closes every connection at a high rate, ask it to keep connections alive, or give the ' +
          'gateway a secondary Elastic IP (which partners must allowlist too).',
        metric: new cloudwatch.Metric({
          namespace: 'AWS/NATGateway',
          metricName: 'ErrorPortAllocation',
          dimensionsMap: { NatGatewayId: gateway.gatewayId },
          statistic: cloudwatch.Stats.SUM,
          period: Duration.minutes(5),
        }),
        threshold: 0,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      alarm.addAlarmAction(notify);
      alarm.addOkAction(notify);
      return alarm;
    });
  }
}

/**
 * Checks that the most network interfaces the attached functions can need fit in one private
 * subnet (should every environment land in the same zone) and within the Lambda quota of
 * interfaces per VPC.
 */
function checkCapacity(id: string, maxEnvironments: number): void {
  if (!Number.isInteger(maxEnvironments) || maxEnvironments < 1) {
    throw new Error(`${id}: maxEnvironments must be a whole number, at least 1`);
  }
  const interfaces = hyperplaneInterfacesAtMost(maxEnvironments);
  const room = Math.min(usableAddresses(PRIVATE_SUBNET_MASK), LAMBDA.enisPerVpc);
  if (interfaces > room) {
    throw new Error(
      `${id}: ${maxEnvironments} execution environments may need ${interfaces} network interfaces, ` +
        `more than a private subnet's ${usableAddresses(PRIVATE_SUBNET_MASK)} addresses or the Lambda quota of ` +
        `${LAMBDA.enisPerVpc} per VPC`,
    );
  }
}
