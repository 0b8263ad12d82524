"""GlucoseStream on AWS: the Lambda entry points (HTTP ingest, its authorizer, the pipeline's plan,
bucket task, publish and fail steps) and the Step Functions state machine generated from the
pipeline's step list. ``deploy/aws`` (Terraform) deploys them; ``docs/aws.md`` says how."""
