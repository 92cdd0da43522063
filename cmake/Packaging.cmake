# The Debian package (scripts/package, preset `package`) and what it installs beyond the library,
# `mpt` and the Python module: the man pages (man/*.1, gzip -9n), the docs, the Debian copyright
# file and changelog, and with MPT_SYSTEMD_UNIT_DIR the unit mpthrottle-calibrate.service. The
# maintainer scripts are packaging/postinst, prerm and postrm. What the package holds and why:
# docs/install.md.

# --- Man pages: man/<page>.1 -> <build>/man/<page>.1.gz, installed to share/man/man1 ----------
file(GLOB mpt_man_sources CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/man/*.1)
set(mpt_man_pages "")
foreach(src ${mpt_man_sources})
  get_filename_component(page ${src} NAME)
  set(gz ${CMAKE_BINARY_DIR}/man/${page}.gz)
  add_custom_command(OUTPUT ${gz}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/man
    COMMAND sh -c "gzip -9n -c \"$1\" >\"$2\"" sh ${src} ${gz}
    DEPENDS ${src} VERBATIM)
  list(APPEND mpt_man_pages ${gz})
endforeach()
add_custom_target(mpt_man ALL DEPENDS ${mpt_man_pages})
install(FILES ${mpt_man_pages} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)

# --- Docs, copyright, changelog: share/doc/mpthrottle (README's links into docs/ still work) ---
set(MPT_DEB_MAINTAINER "mpthrottle maintainers <maintainers@users.noreply.h-seed-3d6bac7e.example>"
    CACHE STRING "The package's Maintainer (and its changelog's signature)")
set(mpt_docdir ${CMAKE_INSTALL_DATAROOTDIR}/doc/mpthrottle)
file(GLOB mpt_doc_pages CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/docs/*.md)
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION ${mpt_docdir})
install(FILES ${mpt_doc_pages} DESTINATION ${mpt_docdir}/docs)
install(FILES ${PROJECT_SOURCE_DIR}/packaging/copyright DESTINATION ${mpt_docdir})
configure_file(${PROJECT_SOURCE_DIR}/packaging/changelog.in ${CMAKE_BINARY_DIR}/packaging/changelog
               @ONLY)
add_custom_command(OUTPUT ${CMAKE_BINARY_DIR}/packaging/changelog.gz
  COMMAND sh -c "gzip -9n -c \"$1\" >\"$2\"" sh ${CMAKE_BINARY_DIR}/packaging/changelog
          ${CMAKE_BINARY_DIR}/packaging/changelog.gz
  DEPENDS ${CMAKE_BINARY_DIR}/packaging/changelog VERBATIM)
add_custom_target(mpt_changelog ALL DEPENDS ${CMAKE_BINARY_DIR}/packaging/changelog.gz)
install(FILES ${CMAKE_BINARY_DIR}/packaging/changelog.gz DESTINATION ${mpt_docdir})
if(COMMAND mpt_label_needs)  # tests/install runs `cmake --install` after building all_tests
  mpt_label_needs(install mpt_man mpt_changelog)
endif()

# --- The systemd unit: only where asked (an absolute directory outside the prefix) -----------
set(MPT_SYSTEMD_UNIT_DIR "" CACHE STRING
    "Install mpthrottle-calibrate.service here (the package preset: /lib/systemd/system); empty: not installed")
if(MPT_SYSTEMD_UNIT_DIR)
  install(FILES ${PROJECT_SOURCE_DIR}/packaging/mpthrottle-calibrate.service
          DESTINATION ${MPT_SYSTEMD_UNIT_DIR})
endif()

# --- CPack: the DEB generator -----------------------------------------------------------------
find_program(MPT_DPKG dpkg)
if(MPT_DPKG)
  execute_process(COMMAND ${MPT_DPKG} --print-architecture OUTPUT_VARIABLE mpt_deb_arch
                  OUTPUT_STRIP_TRAILING_WHITESPACE)
else()
  set(mpt_deb_arch unknown)  # not a Debian host: cpack -G DEB cannot run here anyway
endif()
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME mpthrottle)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DIRECTORY ${PROJECT_SOURCE_DIR}/build/package)
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_PACKAGE_CONTACT "${MPT_DEB_MAINTAINER}")
set(CPACK_SET_DESTDIR ON)  # MPT_SYSTEMD_UNIT_DIR is absolute: staged, never the host's /lib
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME mpthrottle_${PROJECT_VERSION}_${mpt_deb_arch}.deb)
set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE ${mpt_deb_arch})
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${MPT_DEB_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_SECTION utils)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "${PROJECT_DESCRIPTION}
A token bucket in shared memory that any process attaches to by name, a monitor of what the
processes did, USDT probes that let the kernel count the same emissions, and a Redis backend for
several hosts. This package holds the mpt command, the shared and static library with headers,
CMake and pkg-config files, the Python module mpthrottle (for Debian 12's python3.11), the
benchmark programs, man pages, and mpthrottle-calibrate.service, which calibrates the host at
boot when no calibration file is in force.")
# Depends: what dpkg-shlibdeps finds the ELF files need (libbpf1, libhiredis0.14, libelf1, libc6,
# libstdc++6, ...). The Python module needs python3.11, but mpt and the library do not: Recommends
# (installed by default; docs/install.md says why).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# A shlibs file for libmpthrottle.so.0 (programs packaged against it get a Depends on mpthrottle)
# and the ldconfig trigger.
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY ">=")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "python3 (>= 3.11~), python3 (<< 3.12)")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "g++ | clang, cmake | pkg-config, libhiredis-dev")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/packaging/postinst ${PROJECT_SOURCE_DIR}/packaging/prerm
    ${PROJECT_SOURCE_DIR}/packaging/postrm ${PROJECT_SOURCE_DIR}/packaging/triggers)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
