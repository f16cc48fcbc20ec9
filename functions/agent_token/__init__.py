"""Custom resource that keeps the Buildkite agent token in SSM Parameter Store as a SecureString.

CloudFormation cannot create SecureString parameters, so the storage stack hands the token to
this function, which creates, updates and deletes the parameter and never lets the token reach a
log line, an exception message or the response sent back to CloudFormation.
"""
