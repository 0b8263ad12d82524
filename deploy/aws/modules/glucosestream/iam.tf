# One role per function, least privilege: each function may touch only the lake prefixes, Glue
# resources, lock table, secret, key, queue and log group it needs. The Step Functions and
# scheduler roles are in orchestration.tf.

locals {
  lake_arn = aws_s3_bucket.lake.arn
  raw      = "lake/raw/batches"
  tables   = "lake/warehouse"
  staging  = "lake/staging"

  # Which lake prefixes each function reads, writes and deletes under. Ingest writes raw batches
  # (and discards its own unfinished ones); the pipeline reads them, writes Iceberg files, and
  # stages a run's files; nothing but ingest writes the raw zone.
  s3_access = {
    ingest      = { read = [local.raw], write = [local.raw], delete = [local.raw] }
    authorizer  = { read = [], write = [], delete = [] }
    plan        = { read = [local.raw, local.tables, local.staging], write = [local.tables, local.staging], delete = [local.tables, local.staging] }
    bucket_task = { read = [local.raw, local.tables, local.staging], write = [local.tables, local.staging], delete = [] }
    publish     = { read = [local.tables, local.staging], write = [local.tables, local.staging], delete = [local.tables, local.staging] }
    fail        = { read = [local.tables, local.staging], write = [local.tables, local.staging], delete = [local.staging] }
    # Compaction and snapshot expiry: new data and metadata files, and the files no snapshot
    # references any more deleted. The scheduled call never erases a patient, the one
    # maintenance that rewrites raw batches (`glucosestream maintain --erase-patient`, run by an operator).
    maintain = { read = [local.tables], write = [local.tables], delete = [local.tables] }
  }
  # The pipeline's functions open the Iceberg catalog: they read tables, and the first to find a
  # table missing creates it (and its database, which then exists: AlreadyExists is expected).
  glue_access = {
    ingest      = []
    authorizer  = []
    plan        = ["glue:GetDatabase", "glue:GetTable", "glue:GetTables", "glue:CreateDatabase", "glue:CreateTable", "glue:UpdateTable"]
    bucket_task = ["glue:GetDatabase", "glue:GetTable", "glue:GetTables"]
    publish     = ["glue:GetDatabase", "glue:GetTable", "glue:GetTables", "glue:CreateDatabase", "glue:CreateTable", "glue:UpdateTable"]
    fail        = ["glue:GetDatabase", "glue:GetTable", "glue:GetTables", "glue:UpdateTable"]
    # Maintenance commits new snapshots of existing tables; it never creates one (a pipeline
    # run does, before there is anything to maintain).
    maintain = ["glue:GetDatabase", "glue:GetTable", "glue:GetTables", "glue:UpdateTable"]
  }
  # The run lock: plan takes it, the bucket tasks read and extend it, publish and fail free it;
  # maintenance takes, renews and frees it within one call.
  lock_access = {
    ingest      = []
    authorizer  = []
    plan        = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"]
    bucket_task = ["dynamodb:GetItem", "dynamodb:UpdateItem"]
    publish     = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"]
    fail        = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"]
    maintain    = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"]
  }

  glue_resources = [
    "arn:${local.partition}:glue:${local.region}:${local.account_id}:catalog",
    aws_glue_catalog_database.curated.arn,
    aws_glue_catalog_database.results.arn,
    "arn:${local.partition}:glue:${local.region}:${local.account_id}:table/${local.curated_db}/*",
    "arn:${local.partition}:glue:${local.region}:${local.account_id}:table/${local.results_db}/*",
  ]

  function_policies = {
    for key in keys(local.function_commands) : key => {
      Version = "2012-10-17"
      Statement = concat(
        [
          {
            Sid      = "OwnLogGroup"
            Effect   = "Allow"
            Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
            Resource = "${aws_cloudwatch_log_group.function[key].arn}:*"
          },
          {
            # X-Ray has no resource-level permissions: AWS requires "*" here.
            Sid      = "XRayTracing"
            Effect   = "Allow"
            Action   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets"]
            Resource = "*"
          },
          {
            Sid      = "RuntimeSecret"
            Effect   = "Allow"
            Action   = ["secretsmanager:GetSecretValue"]
            Resource = aws_secretsmanager_secret.runtime.arn
          },
          {
            # Environment variables, the secret, lake objects and the dead-letter queue.
            Sid      = "LakeKey"
            Effect   = "Allow"
            Action   = ["kms:Decrypt", "kms:GenerateDataKey"]
            Resource = aws_kms_key.lake.arn
          },
          {
            Sid      = "DeadLetterQueue"
            Effect   = "Allow"
            Action   = ["sqs:SendMessage"]
            Resource = aws_sqs_queue.lambda_dlq.arn
          },
        ],
        [for statement in [
          {
            # Listing under the prefixes the function reads. IfExists: a request without a
            # prefix passes too, because S3 evaluates s3:ListBucket without one for HeadBucket
            # and to answer 404 rather than 403 for a missing object (pyarrow and pyiceberg
            # check that a file does not exist before writing it). Listing shows key names
            # (batch ids, partition paths of pseudonymous keys), never contents.
            Sid      = "ListLakePrefixes"
            Effect   = "Allow"
            Action   = ["s3:ListBucket"]
            Resource = local.lake_arn
            Condition = {
              StringLikeIfExists = {
                "s3:prefix" = concat(["lake", "lake/"], flatten([for p in local.s3_access[key].read : [p, "${p}/*"]]))
              }
            }
          },
          {
            Sid      = "ReadLakeObjects"
            Effect   = "Allow"
            Action   = ["s3:GetObject"]
            Resource = [for p in local.s3_access[key].read : "${local.lake_arn}/${p}/*"]
          },
        ] : statement if length(local.s3_access[key].read) > 0],
        [for statement in [
          {
            Sid      = "WriteLakeObjects"
            Effect   = "Allow"
            Action   = ["s3:PutObject", "s3:AbortMultipartUpload"]
            Resource = [for p in local.s3_access[key].write : "${local.lake_arn}/${p}/*"]
          },
        ] : statement if length(local.s3_access[key].write) > 0],
        [for statement in [
          {
            Sid      = "DeleteLakeObjects"
            Effect   = "Allow"
            Action   = ["s3:DeleteObject"]
            Resource = [for p in local.s3_access[key].delete : "${local.lake_arn}/${p}/*"]
          },
        ] : statement if length(local.s3_access[key].delete) > 0],
        [for statement in [
          {
            Sid      = "IcebergCatalog"
            Effect   = "Allow"
            Action   = local.glue_access[key]
            Resource = local.glue_resources
          },
        ] : statement if length(local.glue_access[key]) > 0],
        [for statement in [
          {
            Sid      = "RunLock"
            Effect   = "Allow"
            Action   = local.lock_access[key]
            Resource = aws_dynamodb_table.lock.arn
          },
        ] : statement if length(local.lock_access[key]) > 0],
        [for statement in local.vpc_statements : statement if local.in_vpc],
      )
    }
  }

  vpc_statements = [
    {
      # EC2's Describe* calls support no resource-level permissions: AWS requires "*".
      Sid      = "VpcDescribeNetworkInterfaces"
      Effect   = "Allow"
      Action   = ["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups"]
      Resource = "*"
    },
    {
      Sid    = "VpcNetworkInterfaces"
      Effect = "Allow"
      Action = ["ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"]
      Resource = concat(
        ["arn:${local.partition}:ec2:${local.region}:${local.account_id}:network-interface/*"],
        [for id in var.vpc_subnet_ids : "arn:${local.partition}:ec2:${local.region}:${local.account_id}:subnet/${id}"],
        [for id in var.vpc_security_group_ids : "arn:${local.partition}:ec2:${local.region}:${local.account_id}:security-group/${id}"],
      )
    },
  ]
}

resource "aws_iam_role" "function" {
  for_each    = local.function_commands
  name        = "${local.function_names[each.key]}-function"
  description = "GlucoseStream ${each.key} Lambda function"
  tags        = var.tags
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "LambdaAssumesTheRole"
      Effect    = "Allow"
      Principal = { Service = "lambda.${local.dns_suffix}" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role_policy" "function" {
  for_each = local.function_commands
  name     = "least-privilege"
  role     = aws_iam_role.function[each.key].id
  policy   = jsonencode(local.function_policies[each.key])
}
