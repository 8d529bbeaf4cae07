# mh_layout(PREFIX): the directories an install to PREFIX uses, as MH_* variables. Used at
# configure time (the binary's defaults, the package's conffiles and maintainer scripts) and
# again at install time (packaging/install-conf.cmake), so that `cmake --install --prefix P`
# writes a configuration that points into P. The package's prefix, /usr, follows Debian;
# every other prefix keeps everything inside itself.
macro(mh_layout prefix)
  if("${prefix}" STREQUAL "/usr")
    set(MH_ETC_DIR /etc/modhost)
    set(MH_STATE_DIR /var/lib/modhost)
    set(MH_LOG_DIR /var/log/modhost)
    set(MH_RUN_DIR /run/modhost)
    set(MH_UNIT_DIR /lib/systemd/system)
    set(MH_LOGROTATE_DIR /etc/logrotate.d)
  else()
    set(MH_ETC_DIR ${prefix}/etc/modhost)
    set(MH_STATE_DIR ${prefix}/var/lib/modhost)
    set(MH_LOG_DIR ${prefix}/var/log/modhost)
    set(MH_RUN_DIR ${prefix}/var/run/modhost)
    set(MH_UNIT_DIR ${prefix}/lib/systemd/system)
    set(MH_LOGROTATE_DIR ${prefix}/etc/logrotate.d)
  endif()
  set(MH_INSTALL_CONF_DIR ${MH_ETC_DIR}/conf.d)
  set(MH_AVAILABLE_DIR ${MH_ETC_DIR}/modules-available)
  set(MH_INSTALL_MODULE_DIR ${prefix}/lib/modhost/modules)
  set(MH_BIN ${prefix}/bin/modhost)
  set(MH_DOC_DIR ${prefix}/share/doc/modhost)
  # The system user: -DMH_USER=NAME, or modhost for the package and none elsewhere.
  if(DEFINED MH_USER_SETTING AND NOT MH_USER_SETTING STREQUAL "auto")
    set(MH_USER "${MH_USER_SETTING}")
  elseif("${prefix}" STREQUAL "/usr")
    set(MH_USER modhost)
  else()
    set(MH_USER "")
  endif()
  if(MH_USER)
    set(MH_CONF_USER_LINES
"  user = \"${MH_USER}\";                              # the unit starts it as this user already;
  group = \"${MH_USER}\";                             # started as root, it switches after binding")
    set(MH_UNIT_USER_LINES "User=${MH_USER}\nGroup=${MH_USER}")
  else()
    set(MH_CONF_USER_LINES
      "  # user = \"modhost\";                          # started as root, switch after binding")
    set(MH_UNIT_USER_LINES "# User=modhost (configure with -DMH_USER=NAME)")
  endif()
endmacro()
