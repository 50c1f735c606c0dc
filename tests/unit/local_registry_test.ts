import assert from "node:assert/strict";
import { javaMajor } from "../../src/infra/local_registry.ts";

Deno.test("javaMajor() reads the major version of any JDK's `java -version`", () => {
  assert.equal(javaMajor('openjdk version "25.0.3" 2026-04-21 LTS\nOpenJDK Runtime Environment Temurin-25.0.3+9'), 25);
  assert.equal(javaMajor('openjdk version "17.0.15" 2025-04-15'), 17);
  assert.equal(javaMajor('openjdk version "21" 2023-09-19'), 21);
  assert.equal(javaMajor('java version "1.8.0_402"'), 8);
  assert.equal(javaMajor("bash: java: command not found"), 0);
});
