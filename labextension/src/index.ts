/**
 * kqi-labextension: KQI Hub's panels in JupyterLab (a "KQI" left sidebar, job log tabs and
 * commands in the palette), talking to the kqi server extension of this notebook server.
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Dialog, ICommandPalette, InputDialog, MainAreaWidget, showDialog } from '@jupyterlab/apputils';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { ITranslator } from '@jupyterlab/translation';
import { LabIcon } from '@jupyterlab/ui-components';

import { JobKind, KqiClient } from './api';
import { chooseLanguage, makeTranslate } from './i18n';
import { createLogTab, LogView } from './logwidget';
import { IKqiEnv, openTensorBoard, TabName } from './panels';
import { KqiSidebar } from './sidebar';

export { chooseLanguage, makeTranslate } from './i18n';

const kqiIconSvg =
  '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">' +
  '<g class="jp-icon3" fill="#616161"><path d="M3 3h4v7.2L13.6 3H19l-7.6 8 8 10h-5.3L8.6 13.4 7 15.1V21H3z"/></g></svg>';

export const kqiIcon = new LabIcon({ name: 'kqi-labextension:kqi', svgstr: kqiIconSvg });

export namespace CommandIDs {
  export const open = 'kqi:open';
  export const refresh = 'kqi:refresh';
  export const showData = 'kqi:show-data';
  export const showDatasets = 'kqi:show-datasets';
  export const showTrainings = 'kqi:show-trainings';
  export const showInferences = 'kqi:show-inferences';
  export const register = 'kqi:register-selection';
  export const download = 'kqi:download-data';
  export const train = 'kqi:train-from-here';
  export const openLog = 'kqi:open-log';
  export const halt = 'kqi:halt-training';
  export const tensorboard = 'kqi:open-tensorboard';
  export const notebook = 'kqi:show-notebook';
}

async function askId(title: string, label: string): Promise<number | null> {
  const result = await InputDialog.getNumber({ title, label, value: undefined as unknown as number });
  if (!result.button.accept || result.value === null || isNaN(Number(result.value))) {
    return null;
  }
  return Number(result.value);
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'kqi-labextension:plugin',
  description: 'KQI Hub panels: data, datasets, trainings, inferences and train from here.',
  autoStart: true,
  requires: [ITranslator, IDefaultFileBrowser],
  optional: [ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    translator: ITranslator,
    browser: IDefaultFileBrowser,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ) => {
    const lang = chooseLanguage(translator.languageCode, document.documentElement.lang, navigator.languages);
    const t = makeTranslate(lang);
    const client = new KqiClient({ settings: app.serviceManager.serverSettings });
    const logTabs = new Map<string, MainAreaWidget<LogView>>();

    const env: IKqiEnv = {
      client,
      t,
      currentPath: () => browser.model.path,
      selectedItems: () => Array.from(browser.selectedItems()).map(item => ({ path: item.path, type: item.type })),
      refreshBrowser: () => browser.model.refresh(),
      openLog: (kind: JobKind, id: number, name: string) => {
        const key = `${kind}-${id}`;
        let tab = logTabs.get(key);
        if (!tab || tab.isDisposed) {
          tab = createLogTab(client, kind, id, name, t);
          logTabs.set(key, tab);
          app.shell.add(tab, 'main');
        }
        app.shell.activateById(tab.id);
      },
      openUrl: (url: string) => {
        window.open(url, '_blank', 'noopener');
      },
      confirm: async (message: string) => {
        const result = await showDialog({
          title: t('kqi.sidebar'),
          body: message,
          buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: t('jobs.halt') })]
        });
        return result.button.accept;
      },
      showTab: (tab: TabName) => sidebar.showTab(tab)
    };

    const sidebar = new KqiSidebar(env);
    sidebar.id = 'kqi-sidebar';
    sidebar.title.icon = kqiIcon;
    sidebar.title.caption = t('kqi.sidebar_caption');
    app.shell.add(sidebar, 'left', { rank: 700 });
    if (restorer) {
      restorer.add(sidebar, 'kqi-sidebar');
    }

    const showTab = (tab: TabName) => {
      sidebar.showTab(tab);
      app.shell.activateById(sidebar.id);
    };

    const { commands } = app;
    commands.addCommand(CommandIDs.open, {
      label: t('cmd.open'),
      execute: () => app.shell.activateById(sidebar.id)
    });
    commands.addCommand(CommandIDs.refresh, {
      label: t('cmd.refresh'),
      execute: () => sidebar.refreshAll()
    });
    commands.addCommand(CommandIDs.showData, { label: t('cmd.data'), execute: () => showTab('data') });
    commands.addCommand(CommandIDs.showDatasets, { label: t('cmd.datasets'), execute: () => showTab('datasets') });
    commands.addCommand(CommandIDs.showTrainings, { label: t('cmd.trainings'), execute: () => showTab('training') });
    commands.addCommand(CommandIDs.showInferences, { label: t('cmd.inferences'), execute: () => showTab('inference') });
    commands.addCommand(CommandIDs.train, { label: t('cmd.train'), execute: () => showTab('train') });
    commands.addCommand(CommandIDs.notebook, { label: t('cmd.notebook'), execute: () => showTab('notebook') });
    commands.addCommand(CommandIDs.register, {
      label: t('cmd.register'),
      execute: () => {
        sidebar.requestRegister();
        app.shell.activateById(sidebar.id);
      }
    });
    commands.addCommand(CommandIDs.download, {
      label: t('cmd.download'),
      execute: async args => {
        const id = typeof args.dataId === 'number' ? args.dataId : await askId(t('cmd.download'), t('cmd.download_prompt'));
        if (id === null) {
          return;
        }
        try {
          const result = await client.dataDownload(id, browser.model.path);
          await browser.model.refresh();
          return result;
        } catch (err) {
          await showDialog({ title: t('cmd.download'), body: (err as Error).message, buttons: [Dialog.okButton()] });
        }
      }
    });
    commands.addCommand(CommandIDs.openLog, {
      label: t('cmd.log'),
      execute: async args => {
        const kind: JobKind = args.kind === 'inference' ? 'inference' : 'training';
        const id = typeof args.id === 'number' ? args.id : await askId(t('cmd.log'), t('cmd.log_prompt'));
        if (id === null) {
          return;
        }
        let name = typeof args.name === 'string' ? args.name : '';
        if (!name) {
          try {
            name = (await client.job(kind, id)).name;
          } catch (err) {
            await showDialog({ title: t('cmd.log'), body: (err as Error).message, buttons: [Dialog.okButton()] });
            return;
          }
        }
        env.openLog(kind, id, name);
      }
    });
    commands.addCommand(CommandIDs.halt, {
      label: t('cmd.halt'),
      execute: async args => {
        const id = typeof args.id === 'number' ? args.id : await askId(t('cmd.halt'), t('cmd.log_prompt'));
        if (id === null) {
          return;
        }
        try {
          await client.halt('training', id);
          sidebar.refreshAll();
        } catch (err) {
          await showDialog({ title: t('cmd.halt'), body: (err as Error).message, buttons: [Dialog.okButton()] });
        }
      }
    });
    commands.addCommand(CommandIDs.tensorboard, {
      label: t('cmd.tensorboard'),
      execute: async args => {
        const id = typeof args.id === 'number' ? args.id : await askId(t('cmd.tensorboard'), t('cmd.log_prompt'));
        if (id === null) {
          return;
        }
        await openTensorBoard(env, id, async message => {
          if (message && message.kind === 'error') {
            await showDialog({ title: t('cmd.tensorboard'), body: message.text, buttons: [Dialog.okButton()] });
          }
        });
      }
    });

    if (palette) {
      const category = 'KQI';
      for (const command of Object.values(CommandIDs)) {
        palette.addItem({ command, category });
      }
    }
  }
};

export default plugin;
