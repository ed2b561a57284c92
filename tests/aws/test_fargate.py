"""The Fargate stack: cfn-lint, checks on the template itself, and a deployment into moto's
CloudFormation through `mlstack aws deploy-fargate`."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from cfnlint.decode import decode

from support.images import VERSION

pytestmark = [
    pytest.mark.aws,
    # moto skips the resource types it does not emulate (NOT_EMULATED) with a warning.
    pytest.mark.filterwarnings("ignore:Tried to parse AWS.*not supported by moto:UserWarning"),
]

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "fargate-tracking-server.yaml"
IMAGE = f"123456789012.dkr.ecr.us-east-1.amazonaws.com/mlstack/tracking-server:{VERSION}"
# What moto's CloudFormation does not emulate (it skips them with a warning); every other
# resource must be created.
NOT_EMULATED = {
    "AWS::SecretsManager::Secret",
    "AWS::S3::BucketPolicy",
    "AWS::ApplicationAutoScaling::ScalableTarget",
    "AWS::ApplicationAutoScaling::ScalingPolicy",
}
IMAGE_SETTINGS = {
    "DB_HOST",
    "DB_PORT",
    "DB_NAME",
    "DB_USER",
    "ARTIFACTS_DESTINATION",
    "MLFLOW_WORKERS",
    "ALLOWED_HOSTS",
    "LOG_LEVEL",
    "MLFLOW_AUTH_ENABLED",
    "MLFLOW_AUTH_ADMIN_USERNAME",
    "MLFLOW_AUTH_DB_NAME",
    "MLFLOW_PRESIGNED_ARTIFACT_URLS",
    "PORT",
    "KEEPALIVE_TIMEOUT",
    "FORWARDED_ALLOW_IPS",
}
SECRET_SETTINGS = {"DB_PASSWORD", "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"}


@pytest.fixture(scope="module")
def template() -> dict:
    decoded, problems = decode(str(TEMPLATE))
    assert not problems, problems
    return decoded


def resources_of(template: dict, kind: str) -> dict:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def policy_statements(template: dict):
    """Every IAM statement granted by the template's roles and policies."""
    for resource in template["Resources"].values():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::IAM::Role":
            for policy in props.get("Policies", []):
                yield from policy["PolicyDocument"]["Statement"]
        elif resource["Type"] in {"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"}:
            yield from props["PolicyDocument"]["Statement"]


def as_list(value):
    return value if isinstance(value, list) else [value]


def test_cfn_lint_is_clean():
    cfn_lint = Path(sys.executable).with_name("cfn-lint")  # installed beside this python
    result = subprocess.run([str(cfn_lint), str(TEMPLATE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_database_is_private_and_encrypted(template):
    databases = resources_of(template, "AWS::RDS::DBInstance")
    assert databases
    for props in (db["Properties"] for db in databases.values()):
        assert props["PubliclyAccessible"] is False
        assert props["StorageEncrypted"] is True
        assert props["MultiAZ"] == {"Ref": "DBMultiAZ"}
        assert props["DeletionProtection"] == {"Ref": "DBDeletionProtection"}
    ingress = template["Resources"]["DatabaseSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert all("CidrIp" not in rule for rule in ingress)  # from the service's group only


def test_no_s3_action_on_every_resource(template):
    for statement in policy_statements(template):
        if statement["Effect"] != "Allow":
            continue
        actions = as_list(statement["Action"])
        if any(action == "*" or action.startswith("s3:") for action in actions):
            assert "*" not in as_list(statement["Resource"]), statement
    for role in resources_of(template, "AWS::IAM::Role").values():
        for arn in role["Properties"].get("ManagedPolicyArns", []):
            text = str(arn)
            assert "FullAccess" not in text, text


# What MLflow needs of RDS for MySQL 8.4 (docs/operations.md, "Recovering a failed migration",
# and the template's comments say why).
MLFLOW_DB_PARAMETERS = {
    "log_bin_trust_function_creators": "1",
    "character_set_server": "utf8mb4",
    "collation_server": "utf8mb4_bin",
}


def test_database_gets_the_parameters_mlflow_needs(template):
    [(name, group)] = resources_of(template, "AWS::RDS::DBParameterGroup").items()
    assert group["Properties"]["Parameters"] == MLFLOW_DB_PARAMETERS
    [database] = resources_of(template, "AWS::RDS::DBInstance").values()
    assert database["Properties"]["DBParameterGroupName"] == {"Ref": name}
    assert database["Properties"]["BackupRetentionPeriod"] > 0  # so binary logging is on
    # Each parameter's reason is written beside it.
    text = TEMPLATE.read_text()
    for parameter in MLFLOW_DB_PARAMETERS:
        comment = text[: text.index(f"        {parameter}:")].rsplit("Parameters:", 1)[1]
        assert "#" in comment, f"{parameter} has no comment saying why"


def test_bucket_is_encrypted_private_and_tls_only(template):
    bucket = template["Resources"]["ArtifactBucket"]["Properties"]
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    [statement] = template["Resources"]["ArtifactBucketPolicy"]["Properties"]["PolicyDocument"][
        "Statement"
    ]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_load_balancer_scheme_is_a_parameter(template):
    parameter = template["Parameters"]["LoadBalancerScheme"]
    assert parameter["Default"] == "internal"
    assert sorted(parameter["AllowedValues"]) == ["internal", "internet-facing"]
    [lb] = resources_of(template, "AWS::ElasticLoadBalancingV2::LoadBalancer").values()
    assert lb["Properties"]["Scheme"] == {"Ref": "LoadBalancerScheme"}


def test_task_gets_every_setting_and_secrets_from_secrets_manager(template):
    [container] = template["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"]
    environment = {item["Name"]: item["Value"] for item in container["Environment"]}
    assert set(environment) >= IMAGE_SETTINGS
    assert environment["MLFLOW_AUTH_ENABLED"] == "true"
    assert not SECRET_SETTINGS & set(environment)
    assert {item["Name"] for item in container["Secrets"]} == SECRET_SETTINGS


def test_server_keeps_connections_longer_than_the_load_balancer(template):
    [lb] = resources_of(template, "AWS::ElasticLoadBalancingV2::LoadBalancer").values()
    attributes = {a["Key"]: a["Value"] for a in lb["Properties"]["LoadBalancerAttributes"]}
    [container] = template["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"]
    environment = {item["Name"]: item["Value"] for item in container["Environment"]}
    assert int(environment["KEEPALIVE_TIMEOUT"]) > int(attributes["idle_timeout.timeout_seconds"])


def test_load_balancer_checks_readiness_and_the_container_liveness(template):
    [group] = resources_of(template, "AWS::ElasticLoadBalancingV2::TargetGroup").values()
    assert group["Properties"]["HealthCheckPath"] == "/ready"
    [container] = template["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"]
    assert any("/health'" in part for part in container["HealthCheck"]["Command"])


def network(moto) -> dict[str, str]:
    """A VPC with four subnets in four zones, in moto."""
    ec2 = moto.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"us-east-1{z}")[
            "Subnet"
        ]["SubnetId"]
        for i, z in enumerate("abcd")
    ]
    return {
        "VPC_ID": vpc,
        "LB_SUBNET_IDS": ",".join(subnets[:2]),
        "PRIVATE_SUBNET_IDS": ",".join(subnets[2:]),
    }


def stack_resources(moto, stack: str) -> dict[str, dict]:
    """Logical id -> summary; moto lists the resources it skipped as blank entries."""
    summaries = moto.client("cloudformation").list_stack_resources(StackName=stack)
    return {
        item["LogicalResourceId"]: item
        for item in summaries["StackResourceSummaries"]
        if item["LogicalResourceId"]
    }


def test_deploys_into_moto_with_an_internal_load_balancer(moto, run_aws, template):
    env = moto.env(TRACKING_SERVER_IMAGE_URI=IMAGE, STACK_NAME="mlstack-test", **network(moto))
    result = run_aws("deploy-fargate", env)
    assert result.returncode == 0, result.stderr[-3000:]

    resources = stack_resources(moto, "mlstack-test")
    expected = {
        name for name, r in template["Resources"].items() if r["Type"] not in NOT_EMULATED
    } - {"HttpRedirectListener", "LoadBalancerRedirectIngress"}  # only with a certificate
    assert set(resources) == expected
    assert {r["ResourceStatus"] for r in resources.values()} == {"CREATE_COMPLETE"}

    elbv2 = moto.client("elbv2")
    [lb] = elbv2.describe_load_balancers()["LoadBalancers"]
    assert lb["Scheme"] == "internal"
    assert result.stdout.strip() == f"http://{lb['DNSName']}"
    [listener] = elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    assert (listener["Protocol"], listener["Port"]) == ("HTTP", 80)

    rds = moto.client("rds")
    [db] = rds.describe_db_instances()["DBInstances"]
    assert db["PubliclyAccessible"] is False
    assert db["StorageEncrypted"] is True
    assert db["MultiAZ"] is False
    # moto's CloudFormation does not pass DeletionProtection on; the template test checks it.
    [group] = db["DBParameterGroups"]
    assert (
        group["DBParameterGroupName"] == resources["DatabaseParameterGroup"]["PhysicalResourceId"]
    )
    described = rds.describe_db_parameter_groups(DBParameterGroupName=group["DBParameterGroupName"])
    assert described["DBParameterGroups"][0]["DBParameterGroupFamily"] == "mysql8.4"
    parameters = rds.describe_db_parameters(DBParameterGroupName=group["DBParameterGroupName"])
    values = {p["ParameterName"]: p.get("ParameterValue") for p in parameters["Parameters"]}
    assert {name: values.get(name) for name in MLFLOW_DB_PARAMETERS} == MLFLOW_DB_PARAMETERS

    ecs = moto.client("ecs")
    arn = resources["TaskDefinition"]["PhysicalResourceId"]
    task = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
    [container] = task["containerDefinitions"]
    assert container["image"] == IMAGE
    environment = {item["name"]: item["value"] for item in container["environment"]}
    assert environment["ALLOWED_HOSTS"].split(",") == [lb["DNSName"]]
    # Forwarded headers believed from loopback and the load balancer's two subnets only.
    assert environment["FORWARDED_ALLOW_IPS"] == "127.0.0.1,::1,10.0.0.0/24,10.0.1.0/24"
    assert environment["DB_HOST"] == db["Endpoint"]["Address"]
    bucket = resources["ArtifactBucket"]["PhysicalResourceId"]
    assert environment["ARTIFACTS_DESTINATION"] == f"s3://{bucket}/artifacts"
    assert {item["name"] for item in container["secrets"]} == SECRET_SETTINGS

    iam = moto.client("iam")
    role = resources["TaskRole"]["PhysicalResourceId"]
    [name] = iam.list_role_policies(RoleName=role)["PolicyNames"]
    document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
    if isinstance(document, str):  # moto keeps a CloudFormation-made policy as a Python repr
        document = ast.literal_eval(document)
    statements = document["Statement"]
    granted = {resource for s in statements for resource in as_list(s["Resource"])}
    assert granted == {f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/artifacts/*"}

    again = run_aws("deploy-fargate", env)  # an update of the same stack
    assert again.returncode == 0, again.stderr[-3000:]


def test_internet_facing_needs_a_certificate(moto, run_aws):
    env = moto.env(TRACKING_SERVER_IMAGE_URI=IMAGE, LB_SCHEME="internet-facing", **network(moto))
    result = run_aws("deploy-fargate", env)
    assert result.returncode == 1
    assert "needs CERTIFICATE_ARN" in result.stderr.strip().splitlines()[-1]
    assert not moto.client("cloudformation").describe_stacks()["Stacks"]


def test_internet_facing_with_https(moto, run_aws):
    certificate = moto.client("acm").request_certificate(DomainName="mlflow.example.com")[
        "CertificateArn"
    ]
    env = moto.env(
        TRACKING_SERVER_IMAGE_URI=IMAGE,
        STACK_NAME="mlstack-public",
        LB_SCHEME="internet-facing",
        CERTIFICATE_ARN=certificate,
        DOMAIN_NAME="mlflow.example.com",
        STACK_PARAMETERS="DBDeletionProtection=false DBMultiAZ=true",
        **network(moto),
    )
    result = run_aws("deploy-fargate", env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "https://mlflow.example.com"

    elbv2 = moto.client("elbv2")
    [lb] = elbv2.describe_load_balancers()["LoadBalancers"]
    assert lb["Scheme"] == "internet-facing"
    listeners = elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    by_port = {item["Port"]: item for item in listeners}
    assert by_port[443]["Protocol"] == "HTTPS"
    assert by_port[443]["Certificates"][0]["CertificateArn"] == certificate
    assert by_port[80]["DefaultActions"][0]["Type"] == "redirect"
    [db] = moto.client("rds").describe_db_instances()["DBInstances"]
    assert db["MultiAZ"] is True

    resources = stack_resources(moto, "mlstack-public")
    task = moto.client("ecs").describe_task_definition(
        taskDefinition=resources["TaskDefinition"]["PhysicalResourceId"]
    )["taskDefinition"]
    environment = {i["name"]: i["value"] for i in task["containerDefinitions"][0]["environment"]}
    assert "mlflow.example.com" in environment["ALLOWED_HOSTS"].split(",")
