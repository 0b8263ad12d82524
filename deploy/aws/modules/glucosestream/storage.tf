# Storage: the customer-managed key, the lake bucket and the bucket its access logs go to.

locals {
  # The principals that use the key: every function's role and the schedules' (their dead-letter
  # queue is encrypted with the key).
  key_user_arns = concat([for role in aws_iam_role.function : role.arn], [aws_iam_role.scheduler.arn, aws_iam_role.maintenance_scheduler.arn])

  # Services that use the key on a caller's behalf (kms:ViaService): S3 (the lake, Athena results),
  # DynamoDB (the lock table), Secrets Manager, SQS (dead-letter queues), SNS (alarms), Lambda
  # (environment variables), Athena and EventBridge Scheduler (the schedule's target).
  key_via_services = [for service in ["s3", "dynamodb", "secretsmanager", "sqs", "sns", "lambda", "athena", "scheduler"] : "${service}.${local.region}.${local.dns_suffix}"]

  key_admin_actions = [
    "kms:CancelKeyDeletion", "kms:CreateAlias", "kms:DeleteAlias", "kms:DescribeKey",
    "kms:DisableKey", "kms:DisableKeyRotation", "kms:EnableKey", "kms:EnableKeyRotation",
    "kms:GetKeyPolicy", "kms:GetKeyRotationStatus", "kms:ListAliases", "kms:ListGrants",
    "kms:ListKeyPolicies", "kms:ListKeyRotations", "kms:ListResourceTags", "kms:PutKeyPolicy",
    "kms:RevokeGrant", "kms:RotateKeyOnDemand", "kms:ScheduleKeyDeletion", "kms:TagResource",
    "kms:UntagResource", "kms:UpdateAlias", "kms:UpdateKeyDescription",
  ]
  key_use_actions = [
    "kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncryptFrom", "kms:ReEncryptTo",
  ]

  # A key policy's Resource is always "*": it means the key the policy is attached to (AWS
  # requires it; a key policy cannot name other resources).
  key_policy = {
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "KeyAdministrationByTheAccount"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = local.key_admin_actions
        Resource  = "*"
      },
      {
        # Principals of the account whose own IAM policy allows it (analysts running Athena,
        # the operator putting the secret, terraform creating the table and functions) may use
        # the key, but only through the services the stack uses.
        Sid       = "KeyUseThroughTheStacksServices"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = concat(local.key_use_actions, ["kms:CreateGrant"])
        Resource  = "*"
        Condition = {
          StringEquals = {
            "kms:CallerAccount" = local.account_id
            "kms:ViaService"    = local.key_via_services
          }
        }
      },
      {
        Sid       = "KeyUseByTheStacksRoles"
        Effect    = "Allow"
        Principal = { AWS = local.key_user_arns }
        Action    = ["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey"]
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchLogsEncryptsTheStacksLogGroups"
        Effect    = "Allow"
        Principal = { Service = "logs.${local.region}.${local.dns_suffix}" }
        Action    = local.key_use_actions
        Resource  = "*"
        Condition = {
          ArnLike = {
            "kms:EncryptionContext:aws:logs:arn" = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:*"
          }
        }
      },
      {
        # Alarms publish to the encrypted SNS topic.
        Sid       = "CloudWatchAlarmsPublishToTheEncryptedTopic"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.${local.dns_suffix}" }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey"]
        Resource  = "*"
        Condition = {
          StringEquals = { "aws:SourceAccount" = local.account_id }
        }
      },
    ]
  }
}

resource "aws_kms_key" "lake" {
  description             = "GlucoseStream ${var.name_prefix}: the lake, its catalog's results, logs, queues, the lock table and the secret"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_days
  policy                  = jsonencode(local.key_policy)
  tags                    = var.tags
}

resource "aws_kms_alias" "lake" {
  name          = "alias/${var.name_prefix}"
  target_key_id = aws_kms_key.lake.key_id
}

# The lake bucket.

resource "aws_s3_bucket" "lake" {
  #checkov:skip=CKV_AWS_144:Cross-region replication is left to the operator: it doubles storage cost and copies health data to a second region (data residency); versioning with expiring noncurrent versions guards against deletion.
  #checkov:skip=CKV2_AWS_62:Nothing consumes bucket events: runs start on the schedule and read the raw zone's manifests, so notifications would have no subscriber.
  bucket        = local.lake_bucket_name
  force_destroy = var.force_destroy
  tags          = var.tags
}

resource "aws_s3_bucket_ownership_controls" "lake" {
  bucket = aws_s3_bucket.lake.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "lake" {
  bucket                  = aws_s3_bucket.lake.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "lake" {
  bucket = aws_s3_bucket.lake.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "lake" {
  bucket = aws_s3_bucket.lake.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.lake.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_logging" "lake" {
  bucket        = aws_s3_bucket.lake.id
  target_bucket = aws_s3_bucket.logs.id
  target_prefix = "s3-access/${local.lake_bucket_name}/"
  # S3 checks that the log bucket lets log delivery write before it turns logging on.
  depends_on = [aws_s3_bucket_policy.logs]
}

resource "aws_s3_bucket_lifecycle_configuration" "lake" {
  bucket     = aws_s3_bucket.lake.id
  depends_on = [aws_s3_bucket_versioning.lake]

  lifecycle {
    precondition {
      condition     = var.raw_archive_days >= var.raw_infrequent_access_days + 30
      error_message = "raw_archive_days must be at least 30 days after raw_infrequent_access_days (STANDARD_IA's minimum stay)."
    }
  }

  # Raw batches are the lake's source: they move to cheaper classes and never expire. S3 moves
  # no object under 128 KB (its default transition_default_minimum_object_size since 2024,
  # kept on purpose): a small batch from one HTTP request stays in STANDARD, where it is cheaper
  # than the 128 KB STANDARD_IA bills for each object.
  rule {
    id     = "raw-batches-to-infrequent-access-then-archive"
    status = "Enabled"
    filter {
      prefix = "lake/raw/batches/"
    }
    transition {
      days          = var.raw_infrequent_access_days
      storage_class = "STANDARD_IA"
    }
    transition {
      days          = var.raw_archive_days
      storage_class = "GLACIER_IR"
    }
  }

  # A run's staged files; a live run is far shorter than a week.
  rule {
    id     = "staging-expires"
    status = "Enabled"
    filter {
      prefix = "lake/staging/"
    }
    expiration {
      days = 7
    }
  }

  rule {
    id     = "athena-results-expire"
    status = "Enabled"
    filter {
      prefix = "athena-results/"
    }
    expiration {
      days = 30
    }
  }

  # Every prefix: overwritten or deleted versions expire, unfinished uploads are aborted.
  rule {
    id     = "noncurrent-versions-and-incomplete-uploads"
    status = "Enabled"
    filter {
      prefix = "" # the whole bucket
    }
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

resource "aws_s3_bucket_policy" "lake" {
  bucket     = aws_s3_bucket.lake.id
  depends_on = [aws_s3_bucket_public_access_block.lake]
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(local.tls_only_statements["lake"], [
      {
        # Objects are written with the lake key or none named (then the default applies).
        Sid       = "DenyOtherEncryption"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:PutObject"
        Resource  = "${aws_s3_bucket.lake.arn}/*"
        Condition = {
          StringNotEqualsIfExists = { "s3:x-amz-server-side-encryption" = "aws:kms" }
        }
      },
      {
        Sid       = "DenyOtherKeys"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:PutObject"
        Resource  = "${aws_s3_bucket.lake.arn}/*"
        Condition = {
          StringNotEqualsIfExists = { "s3:x-amz-server-side-encryption-aws-kms-key-id" = aws_kms_key.lake.arn }
        }
      },
    ])
  })
}

locals {
  # TLS only, 1.2 or newer. A Deny may name every action ("s3:*"): the broader a deny, the
  # stricter it is, and this one must cover every request.
  tls_only_statements = {
    for name, arn in { lake = aws_s3_bucket.lake.arn, logs = aws_s3_bucket.logs.arn } : name => [
      {
        Sid       = "DenyInsecureTransport"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = [arn, "${arn}/*"]
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
      {
        Sid       = "DenyOldTls"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = [arn, "${arn}/*"]
        Condition = { NumericLessThan = { "s3:TlsVersion" = "1.2" } }
      },
    ]
  }
}

# The access-log bucket. S3 server access logging cannot deliver to a bucket whose default
# encryption is SSE-KMS, so this bucket uses SSE-S3; it cannot log into itself either.

resource "aws_s3_bucket" "logs" {
  #checkov:skip=CKV_AWS_145:S3 server access logging cannot deliver to a bucket whose default encryption is SSE-KMS; the log bucket uses SSE-S3 (AES-256).
  #checkov:skip=CKV_AWS_144:Access logs are not replicated to a second region: they are audit records of the lake bucket, kept for access_log_retention_days.
  #checkov:skip=CKV2_AWS_62:Nothing consumes events of the access-log bucket.
  bucket        = local.logs_bucket_name
  force_destroy = var.force_destroy
  tags          = var.tags
}

resource "aws_s3_bucket_ownership_controls" "logs" {
  bucket = aws_s3_bucket.logs.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "logs" {
  bucket                  = aws_s3_bucket.logs.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "logs" {
  bucket = aws_s3_bucket.logs.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "logs" {
  bucket     = aws_s3_bucket.logs.id
  depends_on = [aws_s3_bucket_versioning.logs]

  rule {
    id     = "access-logs-expire"
    status = "Enabled"
    filter {
      prefix = "" # the whole bucket
    }
    expiration {
      days = var.access_log_retention_days
    }
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

resource "aws_s3_bucket_policy" "logs" {
  bucket     = aws_s3_bucket.logs.id
  depends_on = [aws_s3_bucket_public_access_block.logs]
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(local.tls_only_statements["logs"], [
      {
        Sid       = "S3ServerAccessLogsFromTheLakeBucket"
        Effect    = "Allow"
        Principal = { Service = "logging.s3.${local.dns_suffix}" }
        Action    = "s3:PutObject"
        Resource  = "${aws_s3_bucket.logs.arn}/s3-access/${local.lake_bucket_name}/*"
        Condition = {
          ArnLike      = { "aws:SourceArn" = aws_s3_bucket.lake.arn }
          StringEquals = { "aws:SourceAccount" = local.account_id }
        }
      },
    ])
  })
}
