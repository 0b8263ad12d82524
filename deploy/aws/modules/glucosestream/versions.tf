# GlucoseStream on AWS: the lake bucket and its key, the Glue catalog and Athena workgroup, the
# Lambda functions (one container image), the HTTP API, the pipeline's state machine and its
# schedule, the run lock, and the alarms. See ../../README.md.

terraform {
  required_version = ">= 1.7"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.80, < 6.0"
    }
  }
}

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  partition  = data.aws_partition.current.partition
  dns_suffix = data.aws_partition.current.dns_suffix

  # Globally unique bucket names: the prefix, the account and the region.
  lake_bucket_name = "${var.name_prefix}-lake-${local.account_id}-${local.region}"
  logs_bucket_name = "${var.name_prefix}-logs-${local.account_id}-${local.region}"

  curated_db = "${var.namespace_prefix}curated"
  results_db = "${var.namespace_prefix}results"
}
