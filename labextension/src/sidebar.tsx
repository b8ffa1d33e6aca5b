/**
 * The KQI sidebar: one ReactWidget with a tab bar over the panels.
 */
import { ReactWidget } from '@jupyterlab/ui-components';
import * as React from 'react';

import { DataPanel, DatasetsPanel, IKqiEnv, JobsPanel, NotebookPanel, TabName, TABS, TrainPanel } from './panels';

export class KqiSidebar extends ReactWidget {
  private tab: TabName = 'data';
  private refresh = 0;
  private registerRequest = 0;

  constructor(private readonly env: IKqiEnv) {
    super();
    this.addClass('kqi-Sidebar');
  }

  get currentTab(): TabName {
    return this.tab;
  }

  showTab(tab: TabName): void {
    this.tab = tab;
    this.update();
  }

  /** Reload every list. */
  refreshAll(): void {
    this.refresh += 1;
    this.update();
  }

  /** Show the data tab with the "register as data" form of the file browser's selection. */
  requestRegister(): void {
    this.tab = 'data';
    this.registerRequest += 1;
    this.update();
  }

  render(): JSX.Element {
    const { env, tab, refresh } = this;
    const t = env.t;
    return (
      <div className="kqi-sidebar-inner" data-tab={tab}>
        <div className="kqi-sidebar-header">
          <span className="kqi-sidebar-title">{t('kqi.sidebar')}</span>
          <button className="jp-mod-styled kqi-button kqi-small kqi-refresh" onClick={() => this.refreshAll()}>
            {t('kqi.refresh')}
          </button>
        </div>
        <div className="kqi-tabs" role="tablist">
          {TABS.map(name => (
            <button
              key={name}
              role="tab"
              aria-selected={name === tab}
              className={`kqi-tab${name === tab ? ' kqi-tab-active' : ''}`}
              data-tab={name}
              onClick={() => this.showTab(name)}
            >
              {t(`tab.${name}`)}
            </button>
          ))}
        </div>
        <div className="kqi-tab-body">
          {tab === 'data' && <DataPanel env={env} refresh={refresh} registerRequest={this.registerRequest} />}
          {tab === 'datasets' && <DatasetsPanel env={env} refresh={refresh} />}
          {tab === 'training' && <JobsPanel key="training" env={env} kind="training" refresh={refresh} />}
          {tab === 'inference' && <JobsPanel key="inference" env={env} kind="inference" refresh={refresh} />}
          {tab === 'train' && <TrainPanel env={env} refresh={refresh} />}
          {tab === 'notebook' && <NotebookPanel env={env} refresh={refresh} />}
        </div>
      </div>
    );
  }
}
