/* Wine 8 has no bcryptprimitives.dll, but Rust's std (1.78+) takes its random numbers from
 * bcryptprimitives!ProcessPrng. This stub, used only under Wine in tests, forwards to
 * advapi32!SystemFunction036 (RtlGenRandom), which Wine implements. Never shipped. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len) {
        ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!SystemFunction036(data, n))
            return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}

BOOL WINAPI DllMain(HINSTANCE inst, DWORD reason, LPVOID reserved)
{
    (void)inst; (void)reason; (void)reserved;
    return TRUE;
}
