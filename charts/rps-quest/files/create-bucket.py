"""Create the model store's bucket when it is missing and keep it private (run by the chart's bucket Job).

S3 grants anonymous access only through a bucket policy: the bucket gets none, and any it has is removed.
"""

import os
from urllib.parse import urlparse

from minio import Minio
from minio.error import S3Error

endpoint = urlparse(os.environ["RPSQUEST_S3_ENDPOINT"])
bucket = os.environ["RPSQUEST_S3_BUCKET"]
client = Minio(
    endpoint.netloc,
    access_key=os.environ["RPSQUEST_S3_ACCESS_KEY"],
    secret_key=os.environ["RPSQUEST_S3_SECRET_KEY"],
    secure=endpoint.scheme == "https",
)
if client.bucket_exists(bucket):
    print(f"bucket {bucket} exists")
else:
    client.make_bucket(bucket)
    print(f"bucket {bucket} created")
try:
    client.delete_bucket_policy(bucket)
except S3Error as exc:
    if exc.code not in ("NoSuchBucketPolicy", "NotImplemented"):
        raise
print(f"bucket {bucket} has no bucket policy: private")
