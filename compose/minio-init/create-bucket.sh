#!/bin/sh
# One-shot job of the local stack, safe to run again: creates the artifact bucket and the
# MinIO user the tracking server uses, allowed that bucket only (not MinIO's root keys).
# Runs in the MinIO image (it ships `mc`). Secrets reach mc through its environment
# (MC_HOST_*) and stdin, never its command line, so `ps` shows none.
set -eu
: "${ARTIFACTS_DESTINATION:?}" "${MINIO_MLFLOW_USER:?}" "${MINIO_MLFLOW_PASSWORD:?}"
destination="${ARTIFACTS_DESTINATION#s3://}"
BUCKET="${destination%%/*}"
export MC_CONFIG_DIR="$(mktemp -d)"
policy="$MC_CONFIG_DIR/policy.json"
trap 'rm -rf "$MC_CONFIG_DIR"' EXIT
export MC_HOST_stack="http://${MINIO_ROOT_USER:?}:${MINIO_ROOT_PASSWORD:?}@minio:9000"

mc mb --ignore-existing "stack/$BUCKET"
cat >"$policy" <<JSON
{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
      "Resource": ["arn:aws:s3:::$BUCKET"]
    },
    {
      "Effect": "Allow",
      "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject",
                 "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
      "Resource": ["arn:aws:s3:::$BUCKET/*"]
    }
  ]
}
JSON
policy_name="$BUCKET-readwrite"
mc admin policy create stack "$policy_name" "$policy" >/dev/null
# Adding an existing user sets its password again: a changed .env takes effect.
printf '%s\n%s\n' "$MINIO_MLFLOW_USER" "$MINIO_MLFLOW_PASSWORD" | mc admin user add stack >/dev/null
mc admin policy attach stack "$policy_name" --user "$MINIO_MLFLOW_USER" >/dev/null  # idempotent
echo "bucket $BUCKET ready; user $MINIO_MLFLOW_USER may use it and nothing else"
