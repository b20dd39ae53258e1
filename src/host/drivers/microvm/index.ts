export { MicrovmDriver } from './driver.ts';
export { VM_UID_BASE, type MicrovmDriverOptions } from './context.ts';
export { MicrovmDriverError } from './errors.ts';
export { migrateToFile } from './migration.ts';
export { kernelCmdline, qemuArgv, type QemuLaunch, type Accel } from './qemu-argv.ts';
export { ensureVmArtifacts, type VmArtifacts } from './boot-media/artifacts.ts';
export { ensureGuestKernel } from './boot-media/kernel.ts';
