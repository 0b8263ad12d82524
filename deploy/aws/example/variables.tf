variable "region" {
  description = "AWS region of the stack."
  type        = string
  default     = "eu-central-1"
}

variable "name_prefix" {
  description = "Prefix of every resource name (see the module)."
  type        = string
  default     = "glucosestream"
}

variable "image_uri" {
  description = "The Lambda container image in ECR (deploy/aws/Dockerfile), pinned by digest."
  type        = string
}

variable "alarm_email" {
  description = "An address for the alarms (it must confirm the subscription); null for none."
  type        = string
  default     = null
}

variable "schedule_expression" {
  description = "When a pipeline run starts (EventBridge Scheduler rate(...) or cron(...))."
  type        = string
  default     = "rate(1 hour)"
}

variable "maintenance_schedule" {
  description = "When the maintain function compacts the tables and expires old snapshots (rate(...) or cron(...))."
  type        = string
  default     = "cron(30 3 * * ? *)"
}

variable "schedule_enabled" {
  description = "Whether the schedules start runs and maintenance."
  type        = bool
  default     = true
}

variable "force_destroy" {
  description = "A throwaway stack: destroy deletes the buckets with their objects, the lock table, the secret at once and the key after 7 days. Never for a real lake."
  type        = bool
  default     = false
}

variable "vpc_subnet_ids" {
  description = "Subnets for the functions (to reach an RDS metadata store); empty for none."
  type        = list(string)
  default     = []
}

variable "vpc_security_group_ids" {
  description = "Security groups for the functions when vpc_subnet_ids is set."
  type        = list(string)
  default     = []
}

variable "default_tags" {
  description = "Tags on every resource, besides application and stack (provider default_tags)."
  type        = map(string)
  default     = {}
}

variable "endpoint_url" {
  description = "One endpoint URL for every AWS service the stack uses (a local emulator, e.g. http://127.0.0.1:5000 for a moto server). Setting it also skips the provider's credential, metadata and region checks (the account id still comes from STS, which an emulator answers) and uses path-style S3 URLs. null: AWS itself."
  type        = string
  default     = null
}

variable "max_retries" {
  description = "How often the provider retries a failed AWS call (set it low against an emulator, so a missing API fails fast)."
  type        = number
  default     = 25
}
