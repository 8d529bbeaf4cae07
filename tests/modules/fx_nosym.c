/* fx_nosym: a valid shared object that is not a module (it exports no mh_module_v1). */
__attribute__((visibility("default"))) int mh_fx_nosym_answer(void);

__attribute__((visibility("default"))) int mh_fx_nosym_answer(void)
{
    return 42;
}
