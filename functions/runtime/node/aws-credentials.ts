/**
 * On Node, without S3_ACCESS_KEY_ID: the AWS default chain (AWS_* variables, shared config,
 * SSO, web identity, ECS and EC2 roles), loaded on first use; the SDK's provider caches the
 * keys and the S3 client asks again shortly before temporary ones expire.
 */
import type { S3Credentials } from "../../../storage/objects/s3-store.ts";

export function awsDefaultCredentials(): () => Promise<S3Credentials> {
  let provider: (() => Promise<S3Credentials>) | undefined;
  return async () => {
    if (!provider) {
      const { fromNodeProviderChain } = await import("@aws-sdk/credential-providers");
      provider = fromNodeProviderChain();
    }
    return provider();
  };
}
