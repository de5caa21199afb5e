#!/usr/bin/env python3
"""Sets up moto's Route 53 for the route53 plugin's tests, with boto3 (the AWS SDK for Python).

    zone.py ENDPOINT create      an IAM user allowed everything, its key, and hosted zone
                                 example.org. with the test's records; prints
                                 {"zone": ID, "key": KEY, "secret": SECRET}
    zone.py ENDPOINT second KEY SECRET
                                 a second hosted zone example.org.; prints {"zone": ID}
    zone.py ENDPOINT upsert ZONE KEY SECRET NAME TYPE VALUE
                                 changes one record set, signed with the user's key

The keys are moto's like any other (moto does not check signatures of requests with a query
string, so the tests run it without INITIAL_NO_AUTH_ACTION_COUNT; the signer is checked against
AWS's test suite in the unit tests).
"""

import json
import sys

import boto3


def client(service, endpoint, key="testing", secret="testing"):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
    )


def change(r53, zone, changes):
    r53.change_resource_record_sets(
        HostedZoneId=zone,
        ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": c} for c in changes]},
    )


def rrset(name, rtype, *values, ttl=60):
    return {
        "Name": name,
        "Type": rtype,
        "TTL": ttl,
        "ResourceRecords": [{"Value": v} for v in values],
    }


def create(endpoint):
    iam = client("iam", endpoint)
    iam.create_user(UserName="dns")
    key = iam.create_access_key(UserName="dns")["AccessKey"]
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    iam.put_user_policy(UserName="dns", PolicyName="all", PolicyDocument=json.dumps(policy))
    r53 = client("route53", endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    zone = r53.create_hosted_zone(Name="example.org.", CallerReference="clusterdns")["HostedZone"]["Id"]
    change(r53, zone, [
        # moto's own SOA value is not a SOA's text: set one, as an operator may.
        rrset("example.org.", "SOA", "ns-1.awsdns-1.com. hostmaster.example.org. 1 7200 900 1209600 300", ttl=900),
        rrset("www.example.org.", "A", "192.0.2.1"),
        rrset("www.example.org.", "AAAA", "2001:db8::1"),
        rrset("txt.example.org.", "TXT", '"hello world"'),
        rrset("*.wild.example.org.", "A", "192.0.2.9"),
        rrset("alias.example.org.", "CNAME", "www.example.org."),
        rrset("mail.example.org.", "MX", "10 mx.example.org."),
    ])
    # Enough sets for the listing to take two pages (1000 a page).
    # (moto counts an UPSERT twice against a batch's limit of 1000)
    for first in (0, 400, 800):
        bulk = range(first, min(first + 400, 1100))
        change(r53, zone, [rrset(f"host{i:04d}.bulk.example.org.", "A", f"10.1.{i // 256}.{i % 256}") for i in bulk])
    print(json.dumps({"zone": zone, "key": key["AccessKeyId"], "secret": key["SecretAccessKey"]}))


def second(endpoint, key, secret):
    """A second hosted zone for example.org.: one name of its own, and www, which the first
    zone already holds."""
    r53 = client("route53", endpoint, key, secret)
    zone = r53.create_hosted_zone(Name="example.org.", CallerReference="clusterdns-2")["HostedZone"]["Id"]
    change(r53, zone, [
        rrset("example.org.", "SOA", "ns-2.awsdns-2.com. hostmaster.example.org. 1 7200 900 1209600 300", ttl=900),
        rrset("only2.example.org.", "A", "192.0.2.22"),
        rrset("www.example.org.", "A", "192.0.2.99"),
    ])
    print(json.dumps({"zone": zone}))


def main():
    endpoint, action = sys.argv[1], sys.argv[2]
    if action == "create":
        create(endpoint)
    elif action == "second":
        second(endpoint, sys.argv[3], sys.argv[4])
    elif action == "upsert":
        zone, key, secret, name, rtype, value = sys.argv[3:9]
        change(client("route53", endpoint, key, secret), zone, [rrset(name, rtype, value)])
    else:
        raise SystemExit(f"unknown action {action}")


if __name__ == "__main__":
    main()
