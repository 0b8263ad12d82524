# Policies: no Allow statement grants a wildcard action, Resource "*" only where AWS requires it
# (each such statement commented in the module), no Allow to everyone. Every policy document the
# module writes is decoded here: role policies, trust policies, the key, bucket and topic policies.

mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  image_uri = "123456789012.dkr.ecr.eu-central-1.amazonaws.com/glucosestream@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
}

run "no_policy_allows_a_wildcard_action_or_an_unneeded_wildcard_resource" {
  variables {
    vpc_subnet_ids         = ["subnet-0123456789abcdef0"]
    vpc_security_group_ids = ["sg-0123456789abcdef0"]
  }

  assert {
    condition = alltrue(flatten([
      for policy in concat(
        values(aws_iam_role_policy.function)[*].policy, [aws_iam_role_policy.states.policy, aws_iam_role_policy.scheduler.policy, aws_iam_role_policy.maintenance_scheduler.policy],
        values(aws_iam_role.function)[*].assume_role_policy, [aws_iam_role.states.assume_role_policy, aws_iam_role.scheduler.assume_role_policy, aws_iam_role.maintenance_scheduler.assume_role_policy],
        [aws_kms_key.lake.policy, aws_s3_bucket_policy.lake.policy, aws_s3_bucket_policy.logs.policy, aws_sns_topic_policy.alarms.policy],
        ) : [
        for statement in jsondecode(policy).Statement : [
          for action in flatten([statement.Action]) : !strcontains(action, "*")
        ] if statement.Effect == "Allow"
      ]
    ]))
    error_message = "A policy allows a wildcard action (\"*\", \"service:*\" or a partial one): name each action."
  }

  assert {
    condition = alltrue(flatten([
      for policy in concat(
        values(aws_iam_role_policy.function)[*].policy, [aws_iam_role_policy.states.policy, aws_iam_role_policy.scheduler.policy, aws_iam_role_policy.maintenance_scheduler.policy],
        [aws_s3_bucket_policy.lake.policy, aws_s3_bucket_policy.logs.policy, aws_sns_topic_policy.alarms.policy],
        ) : [
        for statement in jsondecode(policy).Statement : (
          !contains(flatten([try(statement.Resource, [])]), "*")
          || contains(["XRayTracing", "LogDelivery", "VpcDescribeNetworkInterfaces"], statement.Sid)
        ) if statement.Effect == "Allow"
      ]
    ]))
    error_message = "A policy allows Resource \"*\" outside the statements AWS requires it for (X-Ray, Step Functions log delivery, EC2 Describe*)."
  }

  assert {
    condition = alltrue(flatten([
      for policy in [aws_kms_key.lake.policy, aws_s3_bucket_policy.lake.policy, aws_s3_bucket_policy.logs.policy, aws_sns_topic_policy.alarms.policy] : [
        for statement in jsondecode(policy).Statement : (
          statement.Principal != "*" && !contains(flatten([try(statement.Principal.AWS, [])]), "*")
        ) if statement.Effect == "Allow"
      ]
    ]))
    error_message = "A resource policy allows everyone (Principal \"*\")."
  }

  assert {
    condition = alltrue([
      for statement in jsondecode(aws_kms_key.lake.policy).Statement :
      !contains(flatten([statement.Action]), "kms:Decrypt") || statement.Sid != "KeyAdministrationByTheAccount"
    ])
    error_message = "The key's administrators may decrypt: administration and use are separate statements."
  }

  assert {
    condition     = anytrue([for s in jsondecode(aws_iam_role_policy.function["ingest"].policy).Statement : s.Sid == "VpcNetworkInterfaces"])
    error_message = "The VPC statements are missing although vpc_subnet_ids is set."
  }
}

run "each_function_reaches_only_what_it_needs" {
  assert {
    condition = alltrue([
      for key, policy in aws_iam_role_policy.function : alltrue([
        for statement in jsondecode(policy.policy).Statement : alltrue([
          for resource in flatten([statement.Resource]) : startswith(resource, "${aws_s3_bucket.lake.arn}/lake/")
        ]) if contains(["ReadLakeObjects", "WriteLakeObjects", "DeleteLakeObjects"], statement.Sid)
      ])
    ])
    error_message = "A function may touch lake objects outside the lake/ prefixes."
  }
  assert {
    condition = [
      for key, policy in aws_iam_role_policy.function : key
      if anytrue([
        for statement in jsondecode(policy.policy).Statement : contains(flatten([statement.Action]), "s3:PutObject")
        && contains(flatten([statement.Resource]), "${aws_s3_bucket.lake.arn}/lake/raw/batches/*")
      ])
    ] == ["ingest"]
    error_message = "Some function other than ingest may write raw batches."
  }
  assert {
    condition = alltrue(flatten([
      for key, policy in aws_iam_role_policy.function : [
        for statement in jsondecode(policy.policy).Statement : alltrue([
          for resource in flatten([statement.Resource]) : resource == aws_secretsmanager_secret.runtime.arn
        ]) if anytrue([for action in flatten([statement.Action]) : startswith(action, "secretsmanager:")])
      ]
    ]))
    error_message = "A function may read secrets other than the runtime secret."
  }
  assert {
    condition = alltrue(flatten([
      for key, policy in aws_iam_role_policy.function : [
        for statement in jsondecode(policy.policy).Statement : alltrue([
          for resource in flatten([statement.Resource]) : contains([aws_glue_catalog_database.curated.arn, aws_glue_catalog_database.results.arn], resource) || endswith(resource, ":catalog") || can(regex(":table/(${var.namespace_prefix}curated|${var.namespace_prefix}results)/\\*$", resource))
        ]) if anytrue([for action in flatten([statement.Action]) : startswith(action, "glue:")])
      ]
    ]))
    error_message = "A function may use Glue resources beyond the catalog, the two databases and their tables."
  }
  assert {
    condition = [
      for key, policy in aws_iam_role_policy.function : key
      if anytrue([for statement in jsondecode(policy.policy).Statement : anytrue([for action in flatten([statement.Action]) : startswith(action, "glue:") || startswith(action, "dynamodb:")])])
    ] == ["bucket_task", "fail", "maintain", "plan", "publish"]
    error_message = "Only the pipeline's functions and maintenance may use the catalog and the run lock."
  }
  assert {
    condition = alltrue(flatten([
      for statement in jsondecode(aws_iam_role_policy.function["maintain"].policy).Statement : [
        for resource in flatten([statement.Resource]) : startswith(resource, "${aws_s3_bucket.lake.arn}/lake/warehouse/")
      ] if contains(["ReadLakeObjects", "WriteLakeObjects", "DeleteLakeObjects"], statement.Sid)
    ]))
    error_message = "Maintenance may touch lake objects outside lake/warehouse/ (the scheduled call neither reads nor rewrites raw batches)."
  }
  assert {
    condition = jsonencode([
      for statement in jsondecode(aws_iam_role_policy.function["maintain"].policy).Statement : sort(flatten([statement.Action]))
      if statement.Sid == "IcebergCatalog"
    ]) == jsonencode([["glue:GetDatabase", "glue:GetTable", "glue:GetTables", "glue:UpdateTable"]])
    error_message = "Maintenance may do more in Glue than read the catalog and update tables."
  }
  assert {
    condition = jsonencode([
      for statement in jsondecode(aws_iam_role_policy.maintenance_scheduler.policy).Statement : {
        actions = flatten([statement.Action]), resources = flatten([statement.Resource])
      } if anytrue([for action in flatten([statement.Action]) : startswith(action, "lambda:") || startswith(action, "states:")])
      ]) == jsonencode([{
        actions = ["lambda:InvokeFunction"], resources = [aws_lambda_function.this["maintain"].arn]
    }])
    error_message = "The maintenance schedule's role may invoke more than the maintain function."
  }
  assert {
    condition = alltrue([
      for statement in jsondecode(aws_iam_role_policy.states.policy).Statement : alltrue([
        for resource in flatten([statement.Resource]) : contains(flatten([for key in ["plan", "bucket_task", "publish", "fail"] : [aws_lambda_function.this[key].arn, "${aws_lambda_function.this[key].arn}:*"]]), resource)
      ]) if statement.Sid == "InvokePipelineFunctions"
    ])
    error_message = "The state machine may invoke functions other than plan, bucket_task, publish and fail."
  }
}
