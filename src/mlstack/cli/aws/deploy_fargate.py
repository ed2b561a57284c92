"""`mlstack aws deploy-fargate` (`make deploy-fargate`): create or update the tracking-server
stack; print its URL.

Deploys infra/fargate-tracking-server.yaml with CloudFormation: ECS Fargate behind a load
balancer (internal unless LB_SCHEME=internet-facing), RDS for MySQL, an S3 artifact bucket,
generated passwords in Secrets Manager, basic-auth on. Prints MLFLOW_TRACKING_URI on stdout;
the admin's password stays in Secrets Manager (the command to read it goes to stderr).
LB_SUBNET_CIDRS (the load balancer subnets' CIDRs, whose X-Forwarded-For the server believes)
is read from LB_SUBNET_IDS unless given.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mlstack import ROOT
from mlstack.cli.aws.common import (
    AwsScriptError,
    account_id,
    boto_session,
    ecr_image_uri,
)
from mlstack.cli.settings import AwsSettings

TEMPLATE = ROOT / "infra" / "fargate-tracking-server.yaml"
WAIT_DELAY_S = 15
WAIT_MAX_ATTEMPTS = 240  # an hour: a new RDS instance alone takes 10-20 minutes
# Environment variable -> template parameter, for the settings most deployments change.
PARAMETER_ENV = {
    "VPC_ID": "VpcId",
    "LB_SUBNET_IDS": "LoadBalancerSubnetIds",
    "LB_SUBNET_CIDRS": "LoadBalancerSubnetCidrs",
    "PRIVATE_SUBNET_IDS": "PrivateSubnetIds",
    "LB_SCHEME": "LoadBalancerScheme",
    "CLIENT_CIDR": "ClientCidr",
    "CERTIFICATE_ARN": "CertificateArn",
    "DOMAIN_NAME": "DomainName",
    "DB_MULTI_AZ": "DBMultiAZ",
    "DB_DELETION_PROTECTION": "DBDeletionProtection",
}
REQUIRED = ("VPC_ID", "LB_SUBNET_IDS", "PRIVATE_SUBNET_IDS")


def parse_extra_parameters(raw: str) -> dict[str, str]:
    """STACK_PARAMETERS: `Name=Value` pairs separated by spaces, for any other parameter."""
    pairs = {}
    for item in raw.split():
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise AwsScriptError(f"STACK_PARAMETERS items must be Name=Value, got {item!r}")
        pairs[name] = value
    return pairs


def stack_parameters(settings: AwsSettings, image_uri: str) -> dict[str, str]:
    """Template parameters from the settings (unset ones keep the template's defaults)."""
    missing = [name for name in REQUIRED if not getattr(settings, name.lower())]
    if missing:
        raise AwsScriptError(
            f"{', '.join(missing)} not set: the stack runs in an existing VPC "
            "(LB_SUBNET_IDS and PRIVATE_SUBNET_IDS: comma-separated subnet ids in 2+ zones)"
        )
    params = {"ImageUri": image_uri}
    for env_name, parameter in PARAMETER_ENV.items():
        value = getattr(settings, env_name.lower())
        if value:
            params[parameter] = value.replace(" ", "")
    params.update(parse_extra_parameters(settings.stack_parameters))
    scheme = params.get("LoadBalancerScheme", "internal")
    if scheme not in {"internal", "internet-facing"}:
        raise AwsScriptError(f"LB_SCHEME must be internal or internet-facing, got {scheme!r}")
    if scheme == "internet-facing" and not params.get("CertificateArn"):
        raise AwsScriptError(
            "LB_SCHEME=internet-facing needs CERTIFICATE_ARN (an ACM certificate): without "
            "HTTPS, MLflow's basic-auth passwords would cross the internet in clear text"
        )
    return params


def subnet_cidrs(ec2, subnet_ids: str) -> str:
    """The subnets' IPv4 CIDRs, comma-separated: the only peers whose X-Forwarded-For the
    server believes (besides loopback) are the load balancer's nodes, which live in them."""
    ids = [item.strip() for item in subnet_ids.split(",") if item.strip()]
    subnets = ec2.describe_subnets(SubnetIds=ids)["Subnets"]
    return ",".join(sorted(subnet["CidrBlock"] for subnet in subnets))


def stack_status(cfn, name: str) -> str | None:
    """The stack's status, or None when there is no such stack."""
    from botocore.exceptions import ClientError

    try:
        return cfn.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
    except ClientError as error:
        if "does not exist" in str(error):
            return None
        raise


def deploy(cfn, name: str, template: str, params: dict[str, str]) -> dict[str, str]:
    """Create or update the stack, wait for it, return its outputs."""
    from botocore.exceptions import ClientError

    cfn.validate_template(TemplateBody=template)
    arguments = {
        "StackName": name,
        "TemplateBody": template,
        "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
        "Capabilities": ["CAPABILITY_IAM"],
        "Tags": [{"Key": "project", "Value": "mlstack"}],
    }
    wait = {"Delay": WAIT_DELAY_S, "MaxAttempts": WAIT_MAX_ATTEMPTS}
    status = stack_status(cfn, name)
    if status is None:
        print(f"creating stack {name} (a new database takes 10-20 minutes)", file=sys.stderr)
        cfn.create_stack(**arguments)
        cfn.get_waiter("stack_create_complete").wait(StackName=name, WaiterConfig=wait)
    elif status == "ROLLBACK_COMPLETE":
        raise AwsScriptError(
            f"stack {name} failed to create earlier (ROLLBACK_COMPLETE): read its events, "
            "then delete it (aws cloudformation delete-stack) and deploy again"
        )
    elif status.endswith("_IN_PROGRESS"):
        raise AwsScriptError(f"stack {name} is busy ({status}): wait for it and try again")
    else:
        print(f"updating stack {name} ({status})", file=sys.stderr)
        try:
            cfn.update_stack(**arguments)
        except ClientError as error:
            if "No updates are to be performed" not in str(error):
                raise
            print(f"stack {name} is already up to date", file=sys.stderr)
        else:
            cfn.get_waiter("stack_update_complete").wait(StackName=name, WaiterConfig=wait)
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    return {item["OutputKey"]: item["OutputValue"] for item in stack.get("Outputs", [])}


def main(settings: AwsSettings, template_path: Path = TEMPLATE) -> None:
    """Deploy the stack with the settings' parameters; print MLFLOW_TRACKING_URI."""
    session = boto_session(settings)
    account_id(session)
    image_uri = settings.tracking_server_image_uri or ecr_image_uri(session, "tracking-server")
    params = stack_parameters(settings, image_uri)
    if "LoadBalancerSubnetCidrs" not in params:
        params["LoadBalancerSubnetCidrs"] = subnet_cidrs(
            session.client("ec2"), params["LoadBalancerSubnetIds"]
        )
    name = settings.stack_name
    outputs = deploy(session.client("cloudformation"), name, template_path.read_text(), params)
    print(
        f"stack {name} is ready; admin user {outputs.get('AdminUsername')!r}, password: "
        "aws secretsmanager get-secret-value --query SecretString --output text "
        f"--secret-id {outputs.get('AdminPasswordSecretArn')}",
        file=sys.stderr,
    )
    print(outputs["TrackingUri"])
