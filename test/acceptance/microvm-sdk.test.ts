/**
 * The same SDK acceptance cases against both drivers (sdk-drivers.suite.ts):
 * microvm under TCG on these machines (docs/host-facts.md), container beside it.
 */
import { driverSuite } from './sdk-drivers.suite.ts';

driverSuite('microvm', {});

driverSuite('container', {
  'requested size is visible to the workspace as its own hardware': 'a container shares the host kernel: nproc and /proc/meminfo are the host\'s; its limits are cgroups (sdk-sandbox.test.ts checks them)',
  'isolation: own kernel, own memory, host processes invisible': 'a container shares the host kernel by design; its isolation is namespaces, seccomp and cgroups (sdk-sandbox.test.ts)',
});
