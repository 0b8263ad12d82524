# An example root: the GlucoseStream module in one account and region.
#
#   terraform init
#   terraform apply -var image_uri=<account>.dkr.ecr.<region>.amazonaws.com/glucosestream@sha256:...
#
# The endpoint variables point every AWS service at one URL (a local emulator such as a moto
# server in the tests); leave them unset for AWS itself.

provider "aws" {
  region                      = var.region
  max_retries                 = var.max_retries
  skip_credentials_validation = var.endpoint_url != null
  skip_metadata_api_check     = var.endpoint_url != null
  skip_region_validation      = var.endpoint_url != null
  s3_use_path_style           = var.endpoint_url != null

  dynamic "endpoints" {
    for_each = var.endpoint_url == null ? [] : [var.endpoint_url]
    content {
      apigatewayv2   = endpoints.value
      athena         = endpoints.value
      cloudwatch     = endpoints.value
      dynamodb       = endpoints.value
      events         = endpoints.value
      glue           = endpoints.value
      iam            = endpoints.value
      kms            = endpoints.value
      lambda         = endpoints.value
      logs           = endpoints.value
      s3             = endpoints.value
      scheduler      = endpoints.value
      secretsmanager = endpoints.value
      sfn            = endpoints.value
      sns            = endpoints.value
      sqs            = endpoints.value
      sts            = endpoints.value
      xray           = endpoints.value
    }
  }

  default_tags {
    tags = merge({ application = "glucosestream", stack = var.name_prefix }, var.default_tags)
  }
}

module "glucosestream" {
  source = "../modules/glucosestream"

  name_prefix                    = var.name_prefix
  image_uri                      = var.image_uri
  alarm_email                    = var.alarm_email
  schedule_expression            = var.schedule_expression
  maintenance_schedule           = var.maintenance_schedule
  schedule_enabled               = var.schedule_enabled
  force_destroy                  = var.force_destroy
  lock_table_deletion_protection = !var.force_destroy
  secret_recovery_window_days    = var.force_destroy ? 0 : 30
  kms_deletion_window_days       = var.force_destroy ? 7 : 30
  vpc_subnet_ids                 = var.vpc_subnet_ids
  vpc_security_group_ids         = var.vpc_security_group_ids
}
