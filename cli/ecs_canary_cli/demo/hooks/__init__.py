"""Lifecycle hook functions the demo deploys as ordinary Lambda functions (zipped from their source).

Each module here is self-contained (it imports only the standard library and boto3, as the Lambda
Python runtime provides them): the demo zips the module's file alone, exactly as a user would
package a small hook, and creates the function with ``lambda:CreateFunction``.
"""
