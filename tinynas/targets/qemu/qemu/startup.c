/* Bare-metal start-up for {{board_name}}'s core ({{core}}) on QEMU's {{qemu_machine}}.
 *
 * Written for tinynas: a vector table, FPU access, .data/.bss set-up, SysTick as a
 * free-running tick counter, C++ constructors, then main(). The C library's output
 * and exit go through Arm semihosting, which qemu-system-arm -semihosting prints on
 * its stdout and turns into its exit status. On a real board use the vendor's
 * start-up file and a UART instead. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define TINYNAS_TICK_HZ {{tick_hz}}u /* SysTick's clock on {{qemu_machine}} */

#define MMIO32(addr) (*(volatile uint32_t *)(addr))
#define CPACR 0xE000ED88u     /* coprocessor access control */
#define SYST_CSR 0xE000E010u  /* SysTick control and status */
#define SYST_RVR 0xE000E014u  /* reload value */
#define SYST_CVR 0xE000E018u  /* current value */

#define SEMIHOST_WRITE0 0x04u
#define SEMIHOST_EXIT 0x18u
#define ADP_APPLICATION_EXIT 0x20026u
#define ADP_RUNTIME_ERROR 0x20023u

extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end, __stack_top;
extern char __heap_start, __heap_end;
extern void __libc_init_array(void);
extern int main(void);

static uintptr_t semihost_call(uint32_t op, const void *arg) {
  register uint32_t r0 __asm__("r0") = op;
  register const void *r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

/* newlib system calls: what printf, malloc and exit need, nothing more. */
int _write(int fd, const char *buf, int len) {
  char piece[65];
  (void)fd;
  for (int at = 0; at < len; at += 64) {
    const int n = len - at < 64 ? len - at : 64;
    memcpy(piece, buf + at, (size_t)n);
    piece[n] = '\0'; /* WRITE0 prints up to a NUL: output is text */
    semihost_call(SEMIHOST_WRITE0, piece);
  }
  return len;
}

void _exit(int status) {
  semihost_call(SEMIHOST_EXIT, (const void *)(uintptr_t)(status == 0 ? ADP_APPLICATION_EXIT
                                                                     : ADP_RUNTIME_ERROR));
  for (;;) {
  }
}

void *_sbrk(ptrdiff_t increment) {
  static char *top = &__heap_start;
  if (increment > &__heap_end - top) {
    errno = ENOMEM;
    return (void *)-1;
  }
  char *old = top;
  top += increment;
  return old;
}

int _read(int fd, char *buf, int len) { (void)fd; (void)buf; (void)len; return 0; }
int _close(int fd) { (void)fd; errno = EBADF; return -1; }
int _lseek(int fd, int offset, int whence) { (void)fd; (void)offset; (void)whence; return 0; }
int _isatty(int fd) { return fd >= 0 && fd <= 2; }
int _fstat(int fd, struct stat *st) { (void)fd; memset(st, 0, sizeof *st); st->st_mode = S_IFCHR; return 0; }
int _getpid(void) { return 1; }
int _kill(int pid, int sig) { (void)pid; (void)sig; errno = EINVAL; return -1; }
void _init(void) {}
void _fini(void) {}
/* -nostartfiles drops crtbegin.o, which defines the handle that static objects'
 * destructors register under; there is one image, so any unique address will do. */
void *__dso_handle = &__dso_handle;

/* SysTick counts down 24 bits at TINYNAS_TICK_HZ; its interrupt counts the wraps. */
static volatile uint32_t systick_wraps;
void SysTick_Handler(void) { systick_wraps++; }

uint32_t tinynas_ticks(void) {
  uint32_t wraps, value;
  do {
    wraps = systick_wraps;
    value = MMIO32(SYST_CVR);
  } while (wraps != systick_wraps);
  return (wraps << 24) + (0xFFFFFFu - value);
}

uint32_t tinynas_ticks_per_second(void) { return TINYNAS_TICK_HZ; }

static void fault_handler(void) {
  static const char message[] = "fault exception: stack overflow or bad memory access\n";
  semihost_call(SEMIHOST_WRITE0, message);
  _exit(3);
}

static void idle_handler(void) {
  for (;;) {
  }
}

static void __attribute__((noinline, used)) start_c(void) {
  const uint32_t *from = &__data_load;
  for (uint32_t *to = &__data_start; to < &__data_end;) *to++ = *from++;
  for (uint32_t *to = &__bss_start; to < &__bss_end;) *to++ = 0;
  MMIO32(SYST_RVR) = 0xFFFFFFu;
  MMIO32(SYST_CVR) = 0;
  MMIO32(SYST_CSR) = 0x7u; /* processor clock, interrupt on wrap, enabled */
  __libc_init_array();
  exit(main());
}

void Reset_Handler(void) {
#if defined(__ARM_FP)
  MMIO32(CPACR) |= 0xFu << 20; /* CP10 and CP11 full access, before any FP instruction */
  __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
  start_c();
}

typedef void (*handler_t)(void);
__attribute__((section(".vectors"), used)) const handler_t tinynas_vectors[16] = {
    (handler_t)&__stack_top, /* initial main stack pointer */
    Reset_Handler,
    idle_handler,  /* NMI */
    fault_handler, /* HardFault */
    fault_handler, /* MemManage */
    fault_handler, /* BusFault */
    fault_handler, /* UsageFault */
    0, 0, 0, 0,
    idle_handler, /* SVCall */
    idle_handler, /* DebugMonitor */
    0,
    idle_handler, /* PendSV */
    SysTick_Handler,
};
