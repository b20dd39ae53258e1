/** The runc container driver. See driver.ts for the on-host layout and oci.ts for the security posture. */
export { ContainerDriver, ContainerDriverError, containerId, type ContainerDriverOptions, type ContainerSandboxSpec, type ContainerStage } from './driver.ts';
export { ociConfig, seccompProfile, renderHostname, renderHosts, renderResolvConf, workspaceNameservers, SECCOMP_ALLOWED, SECCOMP_STRICTER, SECCOMP_PTRACE, DEFAULT_CAPABILITIES, type OciPaths } from './oci.ts';
export { overlayOptions } from './mounts.ts';
export { bareRuncRun, floorConfig, type FloorOptions, type FloorResult } from './floor.ts';
export { Runc, type RuncState, type RuncStatus } from './runc.ts';
