export { MicrovmDriver, MicrovmDriverError, migrateToFile, VM_UID_BASE, type MicrovmDriverOptions } from './driver.ts';
export { kernelCmdline, qemuArgv, type QemuLaunch, type Accel } from './qemu-argv.ts';
export { ensureVmArtifacts, type VmArtifacts } from './boot-media/artifacts.ts';
export { ensureGuestKernel } from './boot-media/kernel.ts';
