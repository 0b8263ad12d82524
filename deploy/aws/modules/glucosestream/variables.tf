variable "name_prefix" {
  description = "Prefix of every resource name (lowercase letters, digits and hyphens, 3-20 characters, starting with a letter). Bucket names add the account id and region to it."
  type        = string
  default     = "glucosestream"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,18}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-20 characters of lowercase letters, digits and hyphens, start with a letter and not end with a hyphen (it becomes part of bucket names)."
  }
}

variable "namespace_prefix" {
  description = "Prefix of the Glue databases: \"<prefix>curated\" and \"<prefix>results\" (GLUCOSESTREAM_LAKE__NAMESPACE_PREFIX of every function)."
  type        = string
  default     = "gs_"

  validation {
    condition     = can(regex("^[a-z0-9_]{0,40}$", var.namespace_prefix))
    error_message = "namespace_prefix may hold only lowercase letters, digits and underscores (Glue and Athena database names), at most 40 characters."
  }
}

variable "image_uri" {
  description = "The GlucoseStream Lambda container image in ECR (built from deploy/aws/Dockerfile), e.g. 123456789012.dkr.ecr.eu-central-1.amazonaws.com/glucosestream@sha256:... Pin it by digest in production."
  type        = string

  validation {
    condition     = can(regex("^[0-9]{12}\\.dkr\\.ecr\\.[a-z0-9-]+\\.amazonaws\\.com(\\.cn)?/[a-z0-9._/-]+(:[A-Za-z0-9._-]+|@sha256:[0-9a-f]{64})$", var.image_uri))
    error_message = "image_uri must be an ECR image URI with a tag or a sha256 digest: <account>.dkr.ecr.<region>.amazonaws.com/<repository>[:tag|@sha256:digest]."
  }
}

variable "lambda_architecture" {
  description = "Instruction set of the image: x86_64 or arm64 (build the image for the same one)."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.lambda_architecture)
    error_message = "lambda_architecture must be x86_64 or arm64."
  }
}

variable "lambda_memory_mb" {
  description = "Memory (MB) per function, merged over the defaults: ingest 1024, authorizer 512, plan 2048, bucket_task 6144 (merge, transform and stage a bucket of patients in memory; Lambda gives CPU in proportion), publish 3008, fail 1024, maintain = bucket_task's (compaction rewrites a partition's files in memory)."
  type        = map(number)
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.lambda_memory_mb : contains(["ingest", "authorizer", "plan", "bucket_task", "publish", "fail", "maintain"], k) && v >= 128 && v <= 10240])
    error_message = "lambda_memory_mb keys must be function keys (ingest, authorizer, plan, bucket_task, publish, fail, maintain) and values 128-10240 MB."
  }
}

variable "lambda_timeout_s" {
  description = "Timeout (seconds) per function, merged over the defaults: ingest 29 (API Gateway waits at most 30 s), authorizer 10, plan 900, bucket_task 900, publish 900, fail 300, maintain 900."
  type        = map(number)
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.lambda_timeout_s : contains(["ingest", "authorizer", "plan", "bucket_task", "publish", "fail", "maintain"], k) && v >= 1 && v <= 900 && (!contains(["ingest", "authorizer"], k) || v <= 29)])
    error_message = "lambda_timeout_s keys must be function keys and values 1-900 s; ingest and authorizer at most 29 s (API Gateway's integration limit)."
  }
}

variable "lambda_reserved_concurrency" {
  description = "Reserved concurrency per function, merged over the defaults: ingest 20, authorizer 20, plan 1, bucket_task = map_max_concurrency, publish 1, fail 1, maintain 1. It caps each function (and reserves that much of the account's pool: the account keeps at least 100 unreserved, ask for a higher limit on a new account). -1 leaves a function unreserved."
  type        = map(number)
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.lambda_reserved_concurrency : contains(["ingest", "authorizer", "plan", "bucket_task", "publish", "fail", "maintain"], k) && v >= -1])
    error_message = "lambda_reserved_concurrency keys must be function keys and values -1 (unreserved) or more."
  }
}

variable "bucket_task_ephemeral_storage_mb" {
  description = "The bucket task's /tmp (MB, 512-10240): room for a bucket's staged files."
  type        = number
  default     = 2048

  validation {
    condition     = var.bucket_task_ephemeral_storage_mb >= 512 && var.bucket_task_ephemeral_storage_mb <= 10240
    error_message = "bucket_task_ephemeral_storage_mb must be 512-10240."
  }
}

variable "extra_environment" {
  description = "More environment variables for every function (GLUCOSESTREAM_<SECTION>__<KEY>). Never put secrets here: they belong in the Secrets Manager secret."
  type        = map(string)
  default     = {}
}

variable "vpc_subnet_ids" {
  description = "Subnets to run the functions in (to reach an RDS/Aurora metadata store). Empty: no VPC. The subnets need routes (NAT or VPC endpoints) to S3, Glue, DynamoDB, Secrets Manager, KMS, SQS and X-Ray."
  type        = list(string)
  default     = []
}

variable "vpc_security_group_ids" {
  description = "Security groups of the functions when vpc_subnet_ids is set."
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.vpc_security_group_ids) > 0 || length(var.vpc_subnet_ids) == 0
    error_message = "vpc_security_group_ids must name at least one security group when vpc_subnet_ids is set."
  }
}

variable "map_max_concurrency" {
  description = "How many bucket tasks the state machine's Map runs at once."
  type        = number
  default     = 10

  validation {
    condition     = var.map_max_concurrency >= 1 && var.map_max_concurrency <= 1000
    error_message = "map_max_concurrency must be 1-1000."
  }
}

variable "schedule_expression" {
  description = "When EventBridge Scheduler starts a pipeline run: rate(...) or cron(...). A run that finds the lock held ends at once."
  type        = string
  default     = "rate(1 hour)"

  validation {
    condition     = can(regex("^(rate|cron|at)\\(.+\\)$", var.schedule_expression))
    error_message = "schedule_expression must be rate(...), cron(...) or at(...)."
  }
}

variable "maintenance_schedule" {
  description = "When EventBridge Scheduler calls the maintain function (compaction of small files, expiry of snapshots older than 7 days): rate(...) or cron(...), in schedule_timezone. A call while a run holds the lock answers busy and waits for the next."
  type        = string
  default     = "cron(30 3 * * ? *)"

  validation {
    condition     = can(regex("^(rate|cron|at)\\(.+\\)$", var.maintenance_schedule))
    error_message = "maintenance_schedule must be rate(...), cron(...) or at(...)."
  }
}

variable "schedule_timezone" {
  description = "Time zone of a cron schedule_expression or maintenance_schedule (IANA name)."
  type        = string
  default     = "UTC"
}

variable "schedule_enabled" {
  description = "Whether the schedules start runs and maintenance (false: both start only by hand)."
  type        = bool
  default     = true
}

variable "log_retention_days" {
  description = "Retention of every CloudWatch log group (one of CloudWatch's allowed values)."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of CloudWatch's values: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653."
  }
}

variable "access_log_retention_days" {
  description = "Days the S3 server access logs are kept in the log bucket."
  type        = number
  default     = 365

  validation {
    condition     = var.access_log_retention_days >= 1
    error_message = "access_log_retention_days must be at least 1."
  }
}

variable "raw_infrequent_access_days" {
  description = "Days after which raw batches (lake/raw/batches/) move to STANDARD_IA."
  type        = number
  default     = 30

  validation {
    condition     = var.raw_infrequent_access_days >= 30
    error_message = "raw_infrequent_access_days must be at least 30 (S3's minimum for STANDARD_IA)."
  }
}

variable "raw_archive_days" {
  description = "Days after which raw batches move to GLACIER_IR (they never expire: they are the lake's source)."
  type        = number
  default     = 180

  validation {
    condition     = var.raw_archive_days >= 60
    error_message = "raw_archive_days must be at least 60 (30 days in STANDARD_IA first)."
  }
}

variable "noncurrent_version_days" {
  description = "Days a noncurrent (overwritten or deleted) object version is kept before it expires."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_version_days >= 1
    error_message = "noncurrent_version_days must be at least 1."
  }
}

variable "athena_bytes_scanned_cutoff" {
  description = "Athena's per-query limit of bytes scanned (at least 10 MB); a query over it is cancelled."
  type        = number
  default     = 10737418240 # 10 GiB

  validation {
    condition     = var.athena_bytes_scanned_cutoff >= 10485760
    error_message = "athena_bytes_scanned_cutoff must be at least 10485760 (10 MB, Athena's minimum)."
  }
}

variable "api_throttle_rate_limit" {
  description = "Steady requests per second the HTTP API allows across its routes."
  type        = number
  default     = 50
}

variable "api_throttle_burst_limit" {
  description = "Burst of requests the HTTP API allows."
  type        = number
  default     = 100
}

variable "alarm_email" {
  description = "An address subscribed to the alarm topic (it must confirm); null: no subscription."
  type        = string
  default     = null
}

variable "kms_deletion_window_days" {
  description = "Waiting period (7-30 days) before the lake key is deleted after a destroy."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_deletion_window_days >= 7 && var.kms_deletion_window_days <= 30
    error_message = "kms_deletion_window_days must be 7-30."
  }
}

variable "secret_recovery_window_days" {
  description = "Days a deleted secret can be restored (0 deletes at once: only for throwaway test stacks)."
  type        = number
  default     = 30
}

variable "force_destroy" {
  description = "Let a destroy delete the buckets and Athena workgroup with their contents. Keep false for a real lake."
  type        = bool
  default     = false
}

variable "lock_table_deletion_protection" {
  description = "DynamoDB deletion protection on the run lock table."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags added to every resource that takes tags (a provider's default_tags work too)."
  type        = map(string)
  default     = {}
}
