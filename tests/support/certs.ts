/**
 * A throwaway certificate authority for TLS tests, made with openssl: a CA, a broker certificate
 * for 127.0.0.1 and localhost, and a client certificate, all as PEM files in a temporary directory.
 */

export interface TestCertificates {
  dir: string;
  /** The CA certificate: the client trusts it, and the broker trusts client certificates it signed. */
  caFile: string;
  /** The broker's PKCS#8 private key followed by its certificate chain (Kafka's PEM key store). */
  brokerKeyAndChainFile: string;
  clientCertFile: string;
  clientKeyFile: string;
}

async function openssl(cwd: string, ...args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", { args, cwd, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
}

/** Makes the CA and the certificates; valid for two days. */
export async function makeTestCertificates(): Promise<TestCertificates> {
  const dir = await Deno.makeTempDir({ prefix: "agentstream-certs-" });
  const days = ["-days", "2"];
  await openssl(
    dir,
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    ...days,
    "-subj",
    "/CN=agentstream test CA",
  );
  const sign = async (name: string, extensions: string) => {
    await Deno.writeTextFile(`${dir}/${name}.ext`, extensions);
    await openssl(
      dir,
      "req",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.csr`,
      "-subj",
      `/CN=${name}`,
    );
    await openssl(
      dir,
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      `${name}.crt`,
      ...days,
      "-extfile",
      `${name}.ext`,
    );
  };
  await sign("broker", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
  await sign("client", "extendedKeyUsage=clientAuth\n");
  const read = (file: string) => Deno.readTextFile(`${dir}/${file}`);
  await Deno.writeTextFile(
    `${dir}/broker.pem`,
    (await read("broker.key")) + (await read("broker.crt")) + (await read("ca.pem")),
  );
  return {
    dir,
    caFile: `${dir}/ca.pem`,
    brokerKeyAndChainFile: `${dir}/broker.pem`,
    clientCertFile: `${dir}/client.crt`,
    clientKeyFile: `${dir}/client.key`,
  };
}
